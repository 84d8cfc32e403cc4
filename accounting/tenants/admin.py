"""Admin for tenants and API keys.

Every save of a tenant or key goes through `Model.save()` (never `QuerySet.update()`), so the
post_save signal clears the gateways' key caches through Redis (gomodel/gateway/invalidation.py).

A new key's plaintext exists only in memory: `save_model` keeps it on the request object, and
`response_add` renders it once on a confirmation page (no redirect, no message, no session; the
page is `no-store`). Reloading that page re-posts the form, which the browser asks about first.
"""

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from ..audit.admin import AuditedModelAdmin, actor
from ..budgets import reports as budgets
from ..labels import LabelError, format_labels, parse_labels
from ..limits.admin import LimitsForm, key_limits_usage, tenant_limits_usage
from ..models import ApiKey, Tenant, UsageDaily
from ..prices.money import cost_string
from ..usage.reports import today_utc
from .keys import KEY_PREFIX, hash_key
from .services import do_create_api_key, do_reactivate_api_key, do_revoke_api_key

if TYPE_CHECKING:  # a mixin for the ModelAdmins below: checked as one of them
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


class BudgetPeriodOptional(_ModelAdmin):
    """A form posted without `budget_period`, `user_budget_period` or `cache_mode` (a script, an older form) keeps
    the model's default."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        for name in ("budget_period", "cache_mode", "user_budget_period"):
            if name in form.base_fields:
                form.base_fields[name].required = False
        return form


def key_state(key: ApiKey, now=None) -> tuple[str, str]:
    """(label, css class) of a key: active, revoked, expired or its tenant inactive."""
    now = now or timezone.now()
    if not key.active:
        return "revoked", "bad"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired", "bad"
    if not key.tenant.active:
        return "tenant inactive", "warn"
    return "active", "ok"


def badge(label: str, kind: str = ""):
    return format_html('<span class="gm-badge {}">{}</span>', kind, label)


# -- tenants -----------------------------------------------------------------------------------------

def _month_sum(field: str):
    rows = (UsageDaily.objects.filter(tenant=OuterRef("pk"), day__gte=today_utc().replace(day=1))
            .order_by().values("tenant").annotate(total=Sum(field)).values("total")[:1])
    return Coalesce(Subquery(rows, output_field=BigIntegerField()), 0)


def limits_summary(obj) -> str:
    """A key's or tenant's rate limits in one short cell ("600 rpm · 2,000,000 tpm · 50 at once")."""
    parts = [f"{value:,} {unit}" for value, unit in ((obj.rpm_limit, "rpm"), (obj.tpm_limit, "tpm"),
                                                      (obj.concurrency_limit, "at once")) if value]
    return " · ".join(parts) or "none"


class ApiKeyInline(admin.TabularInline):
    """The tenant's keys at a glance: one short row each (limits, budget and expiry are edited on the key's
    own page, through the change link; the date widgets made each row ~150 px tall and the table 1,462 px)."""

    model = ApiKey
    extra = 0
    fields = ["prefix", "name", "state", "active", "limits", "expires_at", "last_used_at"]
    readonly_fields = ["prefix", "state", "limits", "expires_at", "last_used_at"]
    show_change_link = True

    @admin.display(description="rate limits")
    def limits(self, obj):
        return limits_summary(obj)

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued from the API key page, which shows the secret once

    @admin.display(description="state")
    def state(self, obj):
        return badge(*key_state(obj))


@admin.register(Tenant)
class TenantAdmin(BudgetPeriodOptional, AuditedModelAdmin):
    list_display = ["slug", "name", "active", "active_keys", "month_requests", "month_spend", "budget_state",
                    "links"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [ApiKeyInline]
    form = LimitsForm
    fieldsets = [(None, {"fields": ["slug", "name", "active"]}),
                 ("Limits", {"fields": ["rpm_limit", "tpm_limit", "concurrency_limit", "allowed_models",
                                        "rate_limit_usage"]}),
                 ("Limits of each end user and per label", {"fields": ["user_rpm_limit", "user_tpm_limit",
                                                                      "label_limits"]}),
                 ("Budget", {"fields": ["budget_usd", "budget_period", "budget_soft_percent", "budget_now"]}),
                 ("Budgets of each end user and per label", {"fields": ["user_budget_usd", "user_budget_period",
                                                                     "label_budgets"]}),
                 ("Response cache", {"fields": ["cache_mode", "cache_ttl_seconds", "cache_max_entry_bytes",
                                                "cache_sampled", "cache_similarity"]})]
    readonly_fields = ["rate_limit_usage", "budget_now"]

    @admin.display(description="rate limits now")
    def rate_limit_usage(self, obj):
        return tenant_limits_usage(obj) if obj.pk else "—"

    def get_queryset(self, request):
        active_keys = (ApiKey.objects.filter(tenant=OuterRef("pk"), active=True).order_by().values("tenant")
                       .annotate(n=Count("pk")).values("n")[:1])
        return super().get_queryset(request).annotate(
            n_active_keys=Coalesce(Subquery(active_keys, output_field=IntegerField()), 0),
            n_month_requests=_month_sum("requests"),
            n_month_unpriced=_month_sum("unpriced_requests"),
            n_month_cost_e10=_month_sum("cost_e10"),
        )

    @admin.display(description="active keys", ordering="n_active_keys")
    def active_keys(self, obj):
        return obj.n_active_keys

    @admin.display(description="requests this month", ordering="n_month_requests")
    def month_requests(self, obj):
        return obj.n_month_requests

    @admin.display(description="spend this month (USD)", ordering="n_month_cost_e10")
    def month_spend(self, obj):
        spend = cost_string(obj.n_month_cost_e10, obj.n_month_requests - obj.n_month_unpriced)
        if spend is None:
            return "unknown" if obj.n_month_requests else "0"
        return spend

    @admin.display(description="budget (spent this period)")
    def budget_state(self, obj):
        return badge(*budgets.describe("tenant", obj))

    @admin.display(description="spent this period")
    def budget_now(self, obj):
        return badge(*budgets.describe("tenant", obj)) if obj.pk else "-"

    @admin.display(description="")
    def links(self, obj):
        month = today_utc().strftime("%Y-%m")
        return format_html('<a href="{}?tenant={}">issue a key</a> · <a href="{}?tenant={}&amp;month={}">statement</a>',
                           reverse("admin:accounting_apikey_add"), obj.pk, reverse("dashboard:statements"),
                           obj.slug, month)


# -- API keys ----------------------------------------------------------------------------------------

class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(Q(active=True), Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "revoked":
            return queryset.filter(active=False)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        return queryset


class LabelsField(forms.CharField):
    """A key's labels edited as `team:search, env:prod` (accounting/labels.py's text form)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Labels every request of this key carries, comma-separated: "
                                       "team:search, env:prod (at most 16; names and values at most 64 characters). "
                                       "A request's own labels of the same name win.")
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return format_labels(value) if isinstance(value, dict) else value

    def to_python(self, value):
        try:
            return parse_labels(value or "")
        except LabelError as exc:
            raise forms.ValidationError(str(exc)) from None


class ApiKeyForm(LimitsForm):
    labels = LabelsField()


@admin.register(ApiKey)
class ApiKeyAdmin(BudgetPeriodOptional, AuditedModelAdmin):
    list_display = ["prefix", "tenant", "name", "state", "last_used_at", "limits", "budget_state", "expires_at",
                    "created_at"]
    list_filter = [KeyStateFilter, "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["prefix", "name", "tenant__slug"]
    search_help_text = "Prefix (e.g. the last 4 characters), name or tenant; or paste a whole key to find it."
    readonly_fields = ["prefix", "state", "last_used_at", "created_at", "rate_limit_usage", "budget_state"]
    actions = ["revoke", "reactivate"]
    form = ApiKeyForm
    LIMIT_FIELDS = ["rpm_limit", "tpm_limit", "concurrency_limit", "allowed_models"]
    BUDGET = ["budget_usd", "budget_period", "budget_soft_percent"]
    CACHE = ["cache_mode", "cache_ttl_seconds", "cache_max_entry_bytes", "cache_sampled", "cache_similarity"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "expires_at", "labels", *self.LIMIT_FIELDS, *self.BUDGET, *self.CACHE]
        return ["prefix", "tenant", "name", "state", "active", "expires_at", "labels", *self.LIMIT_FIELDS,
                "rate_limit_usage",
                *self.BUDGET, "budget_state", *self.CACHE, "last_used_at", "created_at"]

    @admin.display(description="budget (spent this period)")
    def budget_state(self, obj):
        return badge(*budgets.describe("key", obj)) if obj.pk else "-"

    @admin.display(description="rate limits now")
    def rate_limit_usage(self, obj):
        return key_limits_usage(obj)

    @admin.display(description="rate limits")
    def limits(self, obj):
        return limits_summary(obj)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant"] if obj is not None else []

    @admin.display(description="state")
    def state(self, obj):
        return badge(*key_state(obj))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.startswith(KEY_PREFIX) and len(term) > len(KEY_PREFIX) + 20:  # a whole key: find it by its hash
            return queryset.filter(key_hash=hash_key(term)), False
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, plaintext = do_create_api_key(obj.tenant, name=obj.name, rpm=obj.rpm_limit, tpm=obj.tpm_limit,
                                           expires_at=obj.expires_at, actor=actor(request),
                                           concurrency=obj.concurrency_limit, allowed_models=obj.allowed_models,
                                           labels=obj.labels,
                                           **{field: getattr(obj, field) for field in (*self.BUDGET, *self.CACHE)})
        obj.pk, obj.key_hash, obj.prefix, obj.created_at = key.pk, key.key_hash, key.prefix, key.created_at
        request._gomodel_new_key = plaintext  # in memory only, for response_add's page

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(request, "_gomodel_new_key", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        request._gomodel_new_key = None
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created", "subtitle": None, "opts": self.opts, "key": obj, "plaintext": plaintext,
            "change_url": reverse("admin:accounting_apikey_change", args=[obj.pk]),
            "add_url": reverse("admin:accounting_apikey_add") + f"?tenant={obj.tenant_id}",
            "list_url": reverse("admin:accounting_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/accounting/apikey/created.html", context)
        add_never_cache_headers(response)
        response["Cache-Control"] += ", no-store, private"
        response["Referrer-Policy"] = "no-referrer"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for key in queryset.filter(active=True):
            do_revoke_api_key(key, actor=actor(request))
            count += 1
        self.message_user(request, f"Revoked {count} key(s); every gateway refuses them within a second.",
                          messages.SUCCESS)

    @admin.action(description="Reactivate selected keys", permissions=["change"])
    def reactivate(self, request, queryset):
        count = 0
        for key in queryset.filter(active=False):
            do_reactivate_api_key(key, actor=actor(request))
            count += 1
        self.message_user(request, f"Reactivated {count} key(s).", messages.SUCCESS)
