from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import views
from .openapi import openapi_json

router = SimpleRouter()
router.register("tenants", views.TenantViewSet, basename="tenant")
router.register("keys", views.ApiKeyViewSet, basename="apikey")
router.register("providers", views.ProviderConfigViewSet, basename="provider")
router.register("prices", views.ModelPriceViewSet, basename="price")
router.register("audit", views.AuditEntryViewSet, basename="audit")

urlpatterns = [
    path("api/v1/", include(router.urls)),
    path("openapi.json", openapi_json, name="openapi"),
]
