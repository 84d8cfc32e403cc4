"""Shapes of the management API. Secrets are write-only: a provider key comes back redacted, a tenant
key's plaintext only in the response that created it (ApiKeyCreatedSerializer)."""

from decimal import Decimal
from typing import cast

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounting.budgets import counters as budgets
from accounting.budgets.reports import current_spend
from accounting.limits.allowlists import MAX_ENTRIES, MAX_ENTRY_LENGTH, AllowListError, validate_entries
from accounting.models import ApiKey, AuditEntry, BudgetPeriod, ModelPrice, Tenant
from accounting.usage.breakdown import BreakdownError, parse_breakdown
from gomodel.gateway.quotas import current_use
from providers.base import parse_model_quotas
from providers.catalogue import CATALOGUE, PROVIDER_CHOICES
from providers.models import PRIMARY_KEY_LABEL, ProviderConfig

LIMIT = 2**31 - 1


def limit_field(what: str):
    return serializers.IntegerField(min_value=1, max_value=LIMIT, allow_null=True, required=False,
                                    help_text=f"{what}; null: no limit.")


class AllowedModelsField(serializers.ListField):
    """A model allow-list (accounting/limits/allowlists.py), validated and cleaned (stripped, duplicates dropped)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Models it may call: 'provider/model', 'provider/*' or a virtual model name; "
                                       "[]: no restriction.")
        super().__init__(child=serializers.CharField(max_length=MAX_ENTRY_LENGTH, allow_blank=False),
                         max_length=MAX_ENTRIES, required=False, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and not all(isinstance(entry, str) for entry in data):
            raise serializers.ValidationError("Each entry must be a string.")
        try:
            return validate_entries(super().to_internal_value(data))
        except AllowListError as exc:
            raise serializers.ValidationError(str(exc)) from None


BUDGET_USD_HELP = ("Spend limit in USD per budget_period; null: none. Over it: 429 budget_exceeded (a stream is cut). "
                   "A request whose model has no known price is allowed and logged.")


class BudgetMixin(serializers.Serializer):
    """The budget fields tenants and keys share, and this period's spend beside them (read-only)."""

    budget_usd = serializers.DecimalField(max_digits=20, decimal_places=10, min_value=Decimal(0), allow_null=True,
                                          required=False, help_text=BUDGET_USD_HELP)
    budget_period = serializers.ChoiceField(choices=BudgetPeriod.choices, required=False,
                                            help_text="daily, weekly, monthly (calendar-aligned, UTC) or total.")
    budget_soft_percent = serializers.IntegerField(min_value=1, max_value=100, allow_null=True, required=False,
                                                   help_text="Webhook once per period from this share of the "
                                                             "budget; null: BUDGET_SOFT_LIMIT_PERCENT.")
    budget_spent_usd = serializers.SerializerMethodField(
        help_text="Spent in the current budget period (USD); null when no budget is set.")

    BUDGET_FIELDS = ["budget_usd", "budget_period", "budget_soft_percent", "budget_spent_usd"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_budget_spent_usd(self, row) -> str | None:
        budget = budgets.budget_of("tenant" if isinstance(row, Tenant) else "key", row)
        return budgets.usd(current_spend(budget)[0]) if budget is not None else None


class TenantSerializer(BudgetMixin, serializers.ModelSerializer):
    """Every editable field of Tenant, budgets included."""

    rpm_limit = limit_field("Requests per minute, all the tenant's keys together")
    tpm_limit = limit_field("Tokens per minute, all the tenant's keys together")
    concurrency_limit = limit_field("Requests in flight at once, all the tenant's keys together")
    user_rpm_limit = limit_field("Requests per minute of each end user a request names, all the tenant's keys together")
    user_tpm_limit = limit_field("Tokens per minute of each end user a request names, all the tenant's keys together")
    allowed_models = AllowedModelsField()

    class Meta:
        model = Tenant
        fields = "__all__"
        read_only_fields = ["id", "created_at"]


class TenantUpdateSerializer(TenantSerializer):
    """The slug names the tenant in usage rows and dashboards: fixed once created."""

    class Meta(TenantSerializer.Meta):
        read_only_fields = ["id", "slug", "created_at"]


KEY_STATES = ["active", "revoked", "expired", "tenant_inactive"]
# the response cache
CACHE_FIELDS = ["cache_mode", "cache_ttl_seconds", "cache_max_entry_bytes", "cache_sampled", "cache_similarity"]


class ApiKeySerializer(BudgetMixin, serializers.ModelSerializer):
    tenant_slug = serializers.CharField(source="tenant.slug", read_only=True)
    state = serializers.SerializerMethodField()
    rpm_limit = limit_field("Requests per minute")
    tpm_limit = limit_field("Tokens per minute")
    concurrency_limit = limit_field("Requests in flight at once")
    allowed_models = AllowedModelsField(help_text="Models this key may call: 'provider/model', 'provider/*' or a "
                                                  "virtual model name; []: all its tenant allows.")

    class Meta:
        model = ApiKey
        fields = ["id", "tenant", "tenant_slug", "name", "prefix", "state", "active", "expires_at", "last_used_at",
                  "rpm_limit", "tpm_limit", "concurrency_limit", "allowed_models", "labels",
                  *BudgetMixin.BUDGET_FIELDS, *CACHE_FIELDS, "created_at"]
        read_only_fields = ["id", "tenant", "prefix", "active", "last_used_at", "created_at"]

    @extend_schema_field(serializers.ChoiceField(choices=KEY_STATES))
    def get_state(self, key) -> str:
        if not key.active:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= timezone.now():
            return "expired"
        if not key.tenant.active:
            return "tenant_inactive"
        return "active"


class NewKeyMixin:
    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class TenantRefField(serializers.PrimaryKeyRelatedField):
    """A tenant named by id or by slug (a CI script knows the slug, not the primary key)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data and not data.isdigit():
            tenant = cast(QuerySet, self.get_queryset()).filter(slug=data).first()  # queryset= is set
            if tenant is None:
                self.fail("does_not_exist", pk_value=data)
            return tenant
        if isinstance(data, (int, str)) and len(str(data)) > 18:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class ApiKeyCreateSerializer(NewKeyMixin, ApiKeySerializer):
    """POST /api/v1/keys/ names the tenant; POST /api/v1/tenants/{id}/keys/ takes it from the path."""

    tenant = TenantRefField(queryset=Tenant.objects.all(), help_text="The tenant's id or slug.")

    class Meta(ApiKeySerializer.Meta):
        read_only_fields = ["id", "prefix", "active", "last_used_at", "created_at"]

    def validate_tenant(self, tenant):
        if not tenant.active:
            raise serializers.ValidationError("This tenant is deactivated; reactivate it before issuing keys.")
        return tenant


class TenantKeyCreateSerializer(NewKeyMixin, ApiKeySerializer):
    class Meta(ApiKeySerializer.Meta):
        pass


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The plaintext key. Shown in this response only.")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["key"]


class ExtraApiKeySerializer(serializers.Serializer):
    api_key = serializers.CharField(write_only=True, trim_whitespace=True, max_length=4096,
                                    style={"input_type": "password"})
    # A declared field (DRF's metaclass takes it off the class), not Field.label, whatever the stubs say.
    label = serializers.SlugField(required=False, allow_blank=True, max_length=64,  # type: ignore[assignment]
                                  help_text="Names the key in usage and health; empty: the next free 'key-N'.")

    def validate_api_key(self, value):
        if not all(33 <= ord(c) <= 126 for c in value):
            raise serializers.ValidationError("Must be printable ASCII without spaces.")
        return value


class ProviderConfigSerializer(serializers.ModelSerializer):
    provider_type = serializers.ChoiceField(choices=PROVIDER_CHOICES)
    api_key = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=True,
                                    max_length=4096, style={"input_type": "password"},
                                    help_text="Write-only: stored encrypted, returned redacted. Omit or send '' "
                                              "on update to keep the current key.")
    api_key_redacted = serializers.CharField(read_only=True)
    extra_api_keys = serializers.ListField(
        child=ExtraApiKeySerializer(), write_only=True, required=False, max_length=32,
        help_text="Write-only: the config's further keys (its key pool; `api_key` is the first, 'key-1'), each "
                  "stored encrypted and never returned. When sent, the admin-added further keys become exactly "
                  "these (a label already there gets the new key; [] removes them all); omitted keeps them.")
    api_keys = serializers.SerializerMethodField(
        help_text="The key pool by label (never a key): whether the upstream rejected a key (401/403).")
    effective_base_url = serializers.CharField(read_only=True)
    rpm_limit = limit_field("Requests per minute to this provider, every tenant together (its account's quota)")
    tpm_limit = limit_field("Tokens per minute to this provider, every tenant together")
    concurrency_limit = limit_field("Requests in flight to this provider, every tenant together")
    model_quotas = serializers.JSONField(required=False, help_text='Per model of this provider: {"gpt-4o": {"rpm": '
                                         '500, "tpm": 30000, "concurrency": 20}}; {}: none.')
    quota_use = serializers.SerializerMethodField(
        help_text="Each quota's limit, remaining and reset now (from Redis; remaining null: Redis did not answer).")

    class Meta:
        model = ProviderConfig
        fields = ["id", "name", "provider_type", "base_url", "effective_base_url", "api_key", "api_key_redacted",
                  "extra_api_keys", "api_keys", "model_list", "enabled", "rpm_limit", "tpm_limit",
                  "concurrency_limit", "model_quotas", "quota_use", "source", "created_at", "updated_at"]
        read_only_fields = ["id", "source", "created_at", "updated_at"]

    @extend_schema_field({"type": "array", "items": {"type": "object", "properties": {
        "label": {"type": "string"}, "source": {"type": "string"},
        "rejected_at": {"type": "string", "format": "date-time", "nullable": True}}}})
    def get_api_keys(self, obj) -> list[dict]:
        keys = [{"label": PRIMARY_KEY_LABEL, "source": obj.source, "rejected_at": obj.api_key_rejected_at}] \
            if obj.api_key_encrypted else []
        keys += [{"label": k.label, "source": k.source, "rejected_at": k.rejected_at} for k in obj.extra_keys.all()]
        return keys

    @extend_schema_field({"type": "object"})
    def get_quota_use(self, obj) -> dict:
        return current_use(obj)

    def validate_model_quotas(self, value):
        try:
            parse_model_quotas(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value or {}

    def validate_api_key(self, value):
        # It travels in an HTTP header: printable ASCII without spaces, as every provider's keys are.
        if value and not all(33 <= ord(c) <= 126 for c in value):
            raise serializers.ValidationError("Must be printable ASCII without spaces.")
        return value

    def validate(self, attrs):
        instance = self.instance
        provider_type = attrs.get("provider_type", getattr(instance, "provider_type", None))
        spec = CATALOGUE[provider_type]
        base_url = attrs.get("base_url", getattr(instance, "base_url", ""))
        if not (base_url or spec.default_base_url):
            raise serializers.ValidationError({"base_url": f"{spec.label} has no default base URL; set one."})
        has_key = bool(attrs.get("api_key")) or bool(instance is not None and instance.api_key_encrypted)
        if spec.needs_key and not has_key:
            raise serializers.ValidationError({"api_key": f"{spec.label} needs an API key."})
        return attrs


class ProviderTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="True when the upstream listed its models.")
    status = serializers.IntegerField(allow_null=True, help_text="The upstream's HTTP status; null if unreachable.")
    models = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField(allow_null=True)
    latency_ms = serializers.IntegerField()


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "created_at", "actor", "action", "object_type", "object_id", "object_repr", "changes"]
        read_only_fields = fields


# -- prices and usage ---------------------------------------------------------------------------------

class ModelPriceSerializer(serializers.ModelSerializer):
    """USD per million tokens for a provider type (or one provider config's name) and a model id or glob."""

    class Meta:
        model = ModelPrice
        fields = ["id", "provider", "model_pattern", "input_per_million", "cached_input_per_million",
                  "cache_write_per_million", "output_per_million", "reasoning_per_million", "per_image",
                  "per_audio_minute", "per_million_characters", "valid_from", "note"]
        read_only_fields = ["id"]
        extra_kwargs = {field: {"min_value": Decimal(0)} for field in (
            "input_per_million", "cached_input_per_million", "cache_write_per_million", "output_per_million",
            "reasoning_per_million", "per_image", "per_audio_minute", "per_million_characters")}


class UsageQuery(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (UTC, YYYY-MM-DD, inclusive). Default: "
                                                            "the first of end's month, or of this month.")
    end = serializers.DateField(required=False, help_text="Last day (inclusive). Default: the last of start's "
                                                          "month, or of this month.")
    group_by = serializers.ChoiceField(choices=["label", "user"], required=False,
                                       help_text="One row per label (name:value) or per end user instead of per "
                                                 "day × provider × model × key (from the stored events).")
    # DRF's metaclass pops declared fields, so this does not shadow Field.label at run time (the stubs cannot say so).
    label = serializers.CharField(  # type: ignore[assignment]
        required=False, help_text="Only requests carrying this label, as name:value.")
    user = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="Only this end user's requests ('' : requests without one).")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "Must not be before start."})
        try:
            attrs["view"] = parse_breakdown({name: attrs[name] for name in ("group_by", "label", "user")
                                             if name in attrs})
        except BreakdownError as err:
            raise serializers.ValidationError({err.param: str(err)}) from None
        return attrs


class UsageTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost_usd = serializers.CharField(allow_null=True, help_text="USD as a decimal string; null when no request "
                                                                "in it had a known price.")
    cache_hits = serializers.IntegerField(help_text="Requests answered from the response cache (cost 0).")
    cost_saved_usd = serializers.CharField(help_text="What the cache hits would have cost from their provider.")


class BudgetStatusSerializer(serializers.Serializer):
    limit_usd = serializers.CharField()
    spent_usd = serializers.CharField(help_text="Spent in the current period (requests with a known price).")
    remaining_usd = serializers.CharField()
    period = serializers.ChoiceField(choices=BudgetPeriod.choices)
    period_start = serializers.DateField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True, help_text="When the budget resets; null for total.")
    soft_limit_percent = serializers.IntegerField()
    exceeded = serializers.BooleanField()


class UsageRowSerializer(UsageTotalsSerializer):
    """A row per day × provider × model × key; with group_by, a row per label or per end user instead."""

    date = serializers.DateField(required=False)
    provider = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    api_key = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                    help_text="The key's display prefix.")
    label = serializers.CharField(  # type: ignore[assignment]  # as UsageQuery.label
        required=False, allow_null=True, help_text="group_by=label: name:value; null for the requests without a label.")
    user = serializers.CharField(required=False, allow_null=True,
                                 help_text="group_by=user: the end user; null for the requests without one.")
    budget = BudgetStatusSerializer(
        required=False, allow_null=True,
        help_text="group_by=label|user: the budget of this label value (label_budgets) or end user (user_budget_usd) "
                  "this period; absent when it has none.")


class BudgetsSerializer(serializers.Serializer):
    tenant = BudgetStatusSerializer(allow_null=True)
    key = BudgetStatusSerializer(allow_null=True, help_text="Always null here (no calling key).")


class UsageReportSerializer(serializers.Serializer):
    """The same document as GET /v1/usage answers (accounting.usage.reports.usage_report)."""

    object = serializers.ChoiceField(choices=["usage"])
    tenant = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    totals = UsageTotalsSerializer()
    # DRF's serializer metaclass pops declared fields off the class, so this does not shadow
    # Serializer.data at run time; the stubs cannot express that.
    data = UsageRowSerializer(many=True)  # type: ignore[assignment]
    budget = BudgetsSerializer(allow_null=True)
    rate_limits = serializers.JSONField(help_text="The tenant's rate limits now ({key: null, tenant: {requests, "
                                                  "tokens, concurrency}: {limit, remaining, reset_seconds}}), "
                                                  "as GET /v1/usage's core.RateLimits.")
