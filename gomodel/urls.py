from django.contrib import admin
from django.http import JsonResponse
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]


def not_found(request, exception=None):
    return JsonResponse({"error": {"type": "not_found_error", "message": f"No route for {request.method} "
                                   f"{request.path}.", "param": None, "code": "route_not_found"}}, status=404)


handler404 = not_found
