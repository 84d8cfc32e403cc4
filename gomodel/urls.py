from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path

# The admin modules are registered here, with the URLs (SimpleAdminConfig in settings), not when Django
# starts: a gateway worker that serves only /v1 never imports the admin's forms and views.
admin.autodiscover()

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("gomodel.dashboard.urls")),  # usage dashboard and statements (staff only)
    path("", include("gomodel.api.urls")),  # /api/v1/ (management API) and /openapi.json
]


def not_found(request, exception=None):
    return JsonResponse({"error": {"type": "not_found_error", "message": f"No route for {request.method} "
                                   f"{request.path}.", "param": None, "code": "route_not_found"}}, status=404)


handler404 = not_found
