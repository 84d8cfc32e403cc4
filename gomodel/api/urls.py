from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_safe
from rest_framework.routers import SimpleRouter

from . import views
from .openapi import openapi_json

router = SimpleRouter()
router.register("tenants", views.TenantViewSet, basename="tenant")
router.register("keys", views.ApiKeyViewSet, basename="apikey")
router.register("providers", views.ProviderConfigViewSet, basename="provider")
router.register("prices", views.ModelPriceViewSet, basename="price")
router.register("audit", views.AuditEntryViewSet, basename="audit")



@require_safe
def api_root(request):
    """GET /api/v1/: where things are (no credentials needed: the same as /openapi.json says)."""
    return JsonResponse({
        "openapi": "/openapi.json",
        "endpoints": {prefix: f"/api/v1/{prefix}/" for prefix, _viewset, _basename in router.registry},
        "authentication": "Authorization: Bearer <GOMODEL_MASTER_KEY or a staff API token>",
    })


urlpatterns = [
    path("api/v1/", api_root, name="api-root"),
    path("api/v1/", include(router.urls)),
    path("openapi.json", openapi_json, name="openapi"),
]
