from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("gomodel.dashboard.urls")),  # usage dashboard and statements (staff only)
    path("", include("gomodel.api.urls")),  # /api/v1/ (management API) and /openapi.json
]


def not_found(request, exception=None):
    return JsonResponse({"error": {"type": "not_found_error", "message": f"No route for {request.method} "
                                   f"{request.path}.", "param": None, "code": "route_not_found"}}, status=404)


handler404 = not_found
