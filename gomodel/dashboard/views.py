"""Dashboard pages (staff with the usage-event view permission, VIEW_PERMISSION): the overview with its
charts and live feed, and monthly statements. Every tenant's usage and cost is on them, so being staff is
not enough (a staff user without that permission gets 403; the live feed refuses them too)."""

import functools

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from accounting.models import Tenant
from accounting.usage.reports import ReportError, today_utc

from . import services

VIEW_PERMISSION = "accounting.view_usageevent"


def dashboard_view(view):
    """Staff (else the admin's login page) with VIEW_PERMISSION (else 403)."""
    @staff_member_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied("The dashboard needs the permission to view usage events.")
        return view(request, *args, **kwargs)
    return wrapped


def _tenants():
    return list(Tenant.objects.order_by("slug").values_list("slug", "name"))


@require_safe
@dashboard_view
def index(request):
    error = None
    try:
        filters = services.parse_filters(request.GET)
    except ReportError as exc:
        error = str(exc)
        filters = services.parse_filters({})
    return render(request, "dashboard/index.html", {
        **admin.site.each_context(request), "title": "Usage dashboard", "filters": filters, "error": error,
        "tenants": _tenants(),
        "data": services.overview(filters), "granularity": request.GET.get("granularity") or "auto",
        "month": today_utc().strftime("%Y-%m"),
        "config": {"data_url": reverse("dashboard:data"), "ws_path": "/dashboard/ws/live/",
                   "tenant": filters.tenant.slug if filters.tenant else ""},
    }, status=400 if error else 200)


@require_safe
@dashboard_view
def data(request):
    try:
        filters = services.parse_filters(request.GET)
    except ReportError as exc:
        return JsonResponse({"error": {"message": str(exc), "param": exc.param}}, status=400)
    return JsonResponse(services.overview(filters))


@require_safe
@dashboard_view
def statements(request):
    """Pick a tenant and a month; with both, the statement itself."""
    error = statement = None
    by: dict[str, dict] = {}
    slug = request.GET.get("tenant") or ""
    month_value = request.GET.get("month") or today_utc().strftime("%Y-%m")
    try:
        first, last = services.parse_month(month_value)
        if slug:
            tenant = _tenant_or_404(slug)
            statement = services.monthly_statement(tenant, first, last)
            by = {group: services.attribution_statement(tenant, first, last, group) for group in ("label", "user")}
    except ReportError as exc:
        error = str(exc)
    return render(request, "dashboard/statement.html", {
        **admin.site.each_context(request), "title": "Monthly statements", "tenants": _tenants(), "tenant": slug,
        "month": month_value,
        "statement": statement, "by_label": by.get("label"), "by_user": by.get("user"), "error": error,
    }, status=400 if error else 200)


@require_safe
@dashboard_view
def statement_csv(request, slug: str, month: str):
    try:
        first, last = services.parse_month(month)
    except ReportError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    group = request.GET.get("by") or ""  # "label" or "user": one line per label or end user
    if group not in ("", "label", "user"):
        return HttpResponse("'by' must be 'label' or 'user'.", status=400, content_type="text/plain; charset=utf-8")
    tenant = _tenant_or_404(slug)
    statement = services.attribution_statement(tenant, first, last, group) if group else \
        services.monthly_statement(tenant, first, last)
    response = HttpResponse(services.statement_csv(statement), content_type="text/csv; charset=utf-8")
    suffix = f"-by-{group}" if group else ""
    response["Content-Disposition"] = f'attachment; filename="gomodel-statement-{slug}-{month}{suffix}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def _tenant_or_404(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first() if services.SLUG.fullmatch(slug) else None
    if tenant is None:
        raise Http404(f"No tenant '{slug[:64]}'.")
    return tenant
