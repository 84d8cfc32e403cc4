"""Dashboard pages (staff only): the overview with its charts and live feed, and monthly statements."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from accounting.models import Tenant
from accounting.usage.reports import ReportError, today_utc

from . import services


def _tenants():
    return list(Tenant.objects.order_by("slug").values_list("slug", "name"))


@require_safe
@staff_member_required
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
@staff_member_required
def data(request):
    try:
        filters = services.parse_filters(request.GET)
    except ReportError as exc:
        return JsonResponse({"error": {"message": str(exc), "param": exc.param}}, status=400)
    return JsonResponse(services.overview(filters))


@require_safe
@staff_member_required
def statements(request):
    """Pick a tenant and a month; with both, the statement itself."""
    error = statement = None
    slug = request.GET.get("tenant") or ""
    month_value = request.GET.get("month") or today_utc().strftime("%Y-%m")
    try:
        first, last = services.parse_month(month_value)
        if slug:
            statement = services.monthly_statement(_tenant_or_404(slug), first, last)
    except ReportError as exc:
        error = str(exc)
    return render(request, "dashboard/statement.html", {
        **admin.site.each_context(request), "title": "Monthly statements", "tenants": _tenants(), "tenant": slug,
        "month": month_value,
        "statement": statement, "error": error,
    }, status=400 if error else 200)


@require_safe
@staff_member_required
def statement_csv(request, slug: str, month: str):
    try:
        first, last = services.parse_month(month)
    except ReportError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    statement = services.monthly_statement(_tenant_or_404(slug), first, last)
    response = HttpResponse(services.statement_csv(statement), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="gomodel-statement-{slug}-{month}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def _tenant_or_404(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first() if services.SLUG.fullmatch(slug) else None
    if tenant is None:
        raise Http404(f"No tenant '{slug[:64]}'.")
    return tenant
