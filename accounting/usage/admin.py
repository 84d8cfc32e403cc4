"""Admin over usage (events and daily roll-ups): written by the drain only, shown read-only with the
totals of what is filtered."""

from django.contrib import admin
from django.db.models import Count, Q, Sum
from django.utils.html import format_html

from ..audit.admin import ReadOnlyAdminMixin
from ..models import UsageDaily, UsageEvent
from ..prices import money
from ..prices.money import cost_string


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Usage is written by the drain only; the admin shows it, with the totals of what is filtered."""

    totals_template = "admin/accounting/usage_change_list.html"

    def totals(self, queryset) -> list[tuple[str, str]]:
        raise NotImplementedError

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context["gm_totals"] = self.totals(context["cl"].queryset)
        return response


def _distinct(field: str) -> list[tuple[str, str]]:
    """Filter choices from the roll-ups (small), not from the events table (large)."""
    values = UsageDaily.objects.order_by(field).values_list(field, flat=True).distinct()[:200]
    return [(value, value) for value in values if value]


class ProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return _distinct("provider")

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset


class ModelFilter(ProviderFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return _distinct("model")

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_class"
    CHOICES = {
        "ok": ("200 OK", Q(status=200)),
        "error": ("any error", ~Q(status=200)),
        "4xx": ("4xx (client errors)", Q(status__gte=400, status__lt=500)),
        "429": ("429 (rate limited)", Q(status=429)),
        "499": ("499 (client went away)", Q(status=499)),
        "5xx": ("5xx (upstream or gateway errors)", Q(status__gte=500, status__lt=600)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.CHOICES.items()]

    def queryset(self, request, queryset):
        choice = self.CHOICES.get(self.value() or "")
        return queryset.filter(choice[1]) if choice else queryset


class PricedFilter(admin.SimpleListFilter):
    title = "price"
    parameter_name = "priced"

    def lookups(self, request, model_admin):
        return [("yes", "Priced"), ("no", "No price matched")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(cost__isnull=False)
        if self.value() == "no":
            return queryset.filter(cost__isnull=True)
        return queryset


def _n(value) -> str:
    return f"{value or 0:,}"


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    # Fewer, denser columns (16 were 858 px wider than a 1400 px window): tokens, timings and cost with their
    # sources each in one cell; the event's own page has every field.
    list_display = ["created_at", "request_id", "tenant_slug", "api_key_prefix", "provider", "model", "status",
                    "stream", "tokens", "timings", "cost_cell"]
    list_filter = ["tenant", ProviderFilter, ModelFilter, StatusFilter, PricedFilter, "usage_source", "cost_source",
                   "stream"]
    search_fields = ["=request_id", "=user"]
    search_help_text = "Exact request id (the x-request-id response header) or end user."
    date_hierarchy = "created_at"
    show_full_result_count = False
    change_list_template = ReadOnlyAdmin.totals_template

    @admin.display(description="tokens in / out (reasoning) · units", ordering="prompt_tokens")
    def tokens(self, obj):
        text = f"{obj.prompt_tokens:,} / {obj.completion_tokens:,}"
        text += f" ({obj.reasoning_tokens:,})" if obj.reasoning_tokens else ""
        text += " est." if obj.usage_source == "estimated" else ""
        # A media call's units, in the same cell (what a per-unit price billed)
        units = [f"{obj.images:,} img" if obj.images else "", f"{obj.audio_seconds.normalize():f} s audio"
                 if obj.audio_seconds else "", f"{obj.characters:,} chars" if obj.characters else ""]
        return " · ".join([text, *filter(None, units)])

    @admin.display(description="latency / TTFT (ms)", ordering="latency_ms")
    def timings(self, obj):
        latency = "-" if obj.latency_ms is None else f"{obj.latency_ms:,.0f}"
        return latency + ("" if obj.ttft_ms is None else f" / {obj.ttft_ms:,.0f}")

    @admin.display(description="cost (USD)", ordering="cost")
    def cost_cell(self, obj):
        if obj.cost is None:
            return "-"
        return format_html('{} <span class="gm-muted">{}</span>', money.usd(obj.cost), obj.cost_source or "")

    def totals(self, queryset):
        t = queryset.aggregate(requests=Count("pk"), errors=Count("pk", filter=~Q(status=200)),
                               unpriced=Count("pk", filter=Q(cost__isnull=True)), prompt=Sum("prompt_tokens"),
                               completion=Sum("completion_tokens"), total=Sum("total_tokens"), cost=Sum("cost"))
        cost = t["cost"]
        return [("requests", _n(t["requests"])), ("errors", _n(t["errors"])), ("prompt tokens", _n(t["prompt"])),
                ("completion tokens", _n(t["completion"])), ("total tokens", _n(t["total"])),
                ("cost (USD)", money.usd(cost) or "unknown"),
                ("unpriced", f"{t['unpriced']} without a matching price")]


class HasErrorsFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "errors"

    def lookups(self, request, model_admin):
        return [("yes", "With errors"), ("no", "Without errors")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(errors__gt=0)
        if self.value() == "no":
            return queryset.filter(errors=0)
        return queryset


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdmin):
    list_display = ["day", "tenant_slug", "api_key_prefix", "provider", "model", "requests", "errors",
                    "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "unpriced_requests",
                    "cost_usd"]
    list_filter = ["tenant", "provider", "model", HasErrorsFilter]
    search_fields = ["tenant_slug", "api_key_prefix", "model"]
    date_hierarchy = "day"
    change_list_template = ReadOnlyAdmin.totals_template

    @admin.display(description="cost (USD)")
    def cost_usd(self, obj):
        return obj.cost

    def totals(self, queryset):
        t = queryset.aggregate(requests=Sum("requests"), errors=Sum("errors"), unpriced=Sum("unpriced_requests"),
                               prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
                               total=Sum("total_tokens"), cost_e10=Sum("cost_e10"))
        requests = t["requests"] or 0
        cost = cost_string(t["cost_e10"] or 0, requests - (t["unpriced"] or 0))
        return [("requests", _n(requests)), ("errors", _n(t["errors"])), ("prompt tokens", _n(t["prompt"])),
                ("completion tokens", _n(t["completion"])), ("total tokens", _n(t["total"])),
                ("cost (USD)", cost if cost is not None else ("unknown" if requests else "0")),
                ("unpriced", f"{t['unpriced'] or 0} without a matching price")]
