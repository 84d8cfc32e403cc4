from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from .labels import validate_key_labels, validate_label_budgets, validate_label_limits
from .limits.allowlists import AllowListError, validate_entries

LIMIT = [MinValueValidator(1), MaxValueValidator(2**31 - 1)]  # empty (null) is "no limit"


def validate_allowed_models(value):
    try:
        validate_entries(value)
    except AllowListError as exc:
        raise ValidationError(str(exc)) from None

BUDGET_HELP = ("Spend limit in USD for the period below; empty: none. Requests over it get 429 budget_exceeded, "
               "and a stream is cut when it would cross it. A request whose model has no known price is allowed "
               "(and logged): add a price under Model prices to count it.")
SOFT_HELP = "Percent of the budget at which the webhook fires once per period; empty: BUDGET_SOFT_LIMIT_PERCENT."


class BudgetPeriod(models.TextChoices):
    DAILY = "daily", "daily (UTC day)"
    WEEKLY = "weekly", "weekly (Monday to Sunday, UTC)"
    MONTHLY = "monthly", "monthly (calendar month, UTC)"
    TOTAL = "total", "total (never resets)"


class BudgetFields(models.Model):
    """The budget columns tenants and keys share (accounting/budgets/ enforces them)."""

    budget_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True, help_text=BUDGET_HELP,
                                     validators=[MinValueValidator(0)])
    budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTHLY)
    budget_soft_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=SOFT_HELP, validators=[MinValueValidator(1), MaxValueValidator(100)])

    class Meta:
        abstract = True


class CacheMode(models.TextChoices):
    """The response cache (gomodel/gateway/response_cache.py): off, exact (a byte-identical request after JSON
    canonicalisation, per tenant), or semantic (exact first, then a request whose text means nearly the same,
    gomodel/gateway/semantic_cache/)."""

    OFF = "off", "off"
    EXACT = "exact", "exact"
    SEMANTIC = "semantic", "semantic (exact, then similar text)"


CACHE_TTL_HELP = "Seconds a cached answer is kept, and the most x-gomodel-cache-ttl may ask for; empty: {}."
CACHE_SIZE_HELP = "Largest answer stored, in bytes; empty: {}."
CACHE_SIMILARITY_HELP = ("Semantic cache: the least cosine similarity of a request's text to a stored one's for a "
                         "hit (0.5–1); empty: {}.")
SIMILARITY = [MinValueValidator(0.5), MaxValueValidator(1.0)]
CACHE_SAMPLED_HELP = ("Also cache answers sampled with temperature > 0 and no seed (by default only temperature 0 "
                      "or absent, or a seed, are cached){}.")


class Tenant(BudgetFields):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    rpm_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=LIMIT,
        help_text="Requests per minute, all the tenant's keys together; empty: none.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                            help_text="Tokens per minute, all the tenant's keys together; empty: none.")
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=LIMIT,
        help_text="Requests in flight at once, all the tenant's keys together; empty: none.")
    user_rpm_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=LIMIT,
        help_text="Requests per minute of each end user (the user a request names), all the tenant's keys "
                  "together; empty: none. Requests that name no end user are not counted.")
    user_tpm_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=LIMIT,
        help_text="Tokens per minute of each end user, all the tenant's keys together; empty: none.")
    user_budget_usd = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Spend limit in USD of each end user (the user a request names), all the tenant's keys together, "
                  "per the period below; empty: none. Requests naming no end user are not counted there.")
    user_budget_period = models.CharField(
        max_length=8, default=BudgetPeriod.MONTHLY,
        # not "total": an end user's spend is summed from the raw events, kept USAGE_RETENTION_DAYS
        choices=[choice for choice in BudgetPeriod.choices if choice[0] != BudgetPeriod.TOTAL])
    label_limits = models.JSONField(
        default=dict, blank=True, validators=[validate_label_limits],
        help_text="Rate limits per request label, all the tenant's keys together: {\"team:search\": {\"rpm\": 100, "
                  "\"tpm\": 50000}} (either may be left out; at most 64 labels).")
    label_budgets = models.JSONField(
        default=dict, blank=True, validators=[validate_label_budgets],
        help_text="Spend limits per request label, all the tenant's keys together: {\"team:search\": {\"usd\": "
                  "\"200\", \"period\": \"monthly\"}} (period: daily, weekly or monthly; at most 64 labels). "
                  "Enforced like the tenant's budget: 429 budget_exceeded, streams cut.")
    allowed_models = models.JSONField(
        default=list, blank=True, validators=[validate_allowed_models],
        help_text="Models the tenant's keys may call: 'provider/model', 'provider/*' or a virtual model name; "
                  "empty: all.")
    cache_mode = models.CharField(max_length=8, choices=CacheMode.choices, default=CacheMode.OFF,
                                  help_text="Response cache of the tenant's keys (a key may set its own).")
    cache_ttl_seconds = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                                    help_text=CACHE_TTL_HELP.format("RESPONSE_CACHE_TTL"))
    cache_max_entry_bytes = models.PositiveIntegerField(
        null=True, blank=True, validators=LIMIT, help_text=CACHE_SIZE_HELP.format("RESPONSE_CACHE_MAX_ENTRY_BYTES"))
    cache_sampled = models.BooleanField(default=False, help_text=CACHE_SAMPLED_HELP.format(""))
    cache_similarity = models.FloatField(null=True, blank=True, validators=SIMILARITY,
                                         help_text=CACHE_SIMILARITY_HELP.format("SEMANTIC_CACHE_THRESHOLD"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class ApiKey(BudgetFields):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=32, editable=False, db_index=True)
    active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                            help_text="Requests per minute; empty: no limit.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                            help_text="Tokens per minute; empty: no limit.")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                                    help_text="Requests in flight at once; empty: no limit.")
    allowed_models = models.JSONField(
        default=list, blank=True, validators=[validate_allowed_models],
        help_text="Models this key may call: 'provider/model', 'provider/*' or a virtual model name; empty: "
                  "all its tenant allows.")
    cache_mode = models.CharField(max_length=8, choices=CacheMode.choices, blank=True, default="",
                                  help_text="Response cache of this key; empty: its tenant's.")
    cache_ttl_seconds = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                                    help_text=CACHE_TTL_HELP.format("its tenant's"))
    cache_max_entry_bytes = models.PositiveIntegerField(null=True, blank=True, validators=LIMIT,
                                                        help_text=CACHE_SIZE_HELP.format("its tenant's"))
    cache_sampled = models.BooleanField(null=True, blank=True,
                                        help_text=CACHE_SAMPLED_HELP.format("; empty: its tenant's"))
    labels = models.JSONField(
        default=dict, blank=True, validators=[validate_key_labels],
        help_text="Labels every request of this key carries, e.g. {\"team\": \"search\"} (at most 16, each name "
                  "and value at most 64 characters); a request's own labels of the same name win.")
    cache_similarity = models.FloatField(null=True, blank=True, validators=SIMILARITY,
                                         help_text=CACHE_SIMILARITY_HELP.format("its tenant's"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix} ({self.tenant.slug})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.active and self.tenant.active and (self.expires_at is None or self.expires_at > now)


class UsageSource(models.TextChoices):
    REPORTED = "reported", "reported by the upstream"
    ESTIMATED = "estimated", "estimated by the gateway"
    NONE = "none", "nothing generated"


class CostSource(models.TextChoices):
    UPSTREAM = "upstream", "reported by the upstream"
    PRICE_DB = "price_db", "genai-prices database"
    ADMIN = "admin", "admin price"
    UNKNOWN = "unknown", "no price known"
    CACHE = "cache", "served from the response cache (free)"


class CacheResult(models.TextChoices):
    NONE = "", "not from the cache"
    EXACT = "exact", "exact cache hit"
    SEMANTIC = "semantic", "semantic cache hit"


class UsageEvent(models.Model):
    """One /v1 request, as the gateway recorded it (written only by the usage drain).

    `request_id` is unique, so an event delivered twice (stream redelivery, spool replay) is stored
    once. Tenant and key are kept as text too, so history outlives a deleted tenant or key.
    """

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True, help_text="When the request ended (UTC).")
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tenant_slug = models.CharField(max_length=64, blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key_prefix = models.CharField(max_length=32, blank=True)
    provider_config_id = models.BigIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=64, help_text="Provider config name.")
    provider_type = models.CharField(max_length=32, blank=True)
    provider_key = models.CharField(max_length=64, blank=True,
                                    help_text="The label of the provider key that served it (never the key).")
    requested_model = models.CharField(max_length=255, blank=True)
    model = models.CharField(max_length=255, help_text="The model the upstream was asked for.")
    endpoint = models.CharField(max_length=64, blank=True)
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    stream = models.BooleanField(default=False)
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.REPORTED)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True,
                               help_text="USD; empty when no price matched (unknown, not free).")
    cost_source = models.CharField(max_length=16, choices=CostSource.choices, blank=True)
    cache = models.CharField(max_length=8, choices=CacheResult.choices, blank=True, default="",
                             help_text="Answered from the response cache (cost 0).")
    cost_saved_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True,
                                         help_text="A cache hit: what the same answer from its provider costs.")
    labels = models.JSONField(default=dict, blank=True,
                              help_text="The key's labels merged with the request's (the request's win).")
    user = models.CharField(max_length=64, blank=True, default="",
                            help_text="The end user the request named (OpenAI's user, Anthropic's metadata.user_id, "
                                      "or x-gomodel-user).")
    images = models.PositiveIntegerField(default=0, help_text="Images generated or edited (media calls).")
    audio_seconds = models.DecimalField(max_digits=12, decimal_places=3, default=0,
                                        help_text="Seconds of audio transcribed or translated, as the answer said.")
    characters = models.PositiveIntegerField(default=0, help_text="Characters of speech input.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"]), models.Index(fields=["tenant", "user"])]

    def __str__(self):
        return self.request_id


class UsageDaily(models.Model):
    """Roll-up per tenant × key × provider × model × UTC day; the drain adds each new event once.

    Cost is kept as an integer number of 1e-10 USD (`cost_e10`) so that the additive upsert is exact
    on SQLite too (its decimals are floats); `cost` gives it back as a Decimal.
    """

    COST_EXPONENT = -10

    day = models.DateField()
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tenant_slug = models.CharField(max_length=64, blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key_prefix = models.CharField(max_length=32, blank=True)
    provider = models.CharField(max_length=64)
    provider_type = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=255)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0, help_text="Requests that did not end with HTTP 200.")
    estimated_requests = models.BigIntegerField(default=0, help_text="Requests whose usage was estimated.")
    unpriced_requests = models.BigIntegerField(default=0, help_text="Requests no price matched.")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_e10 = models.BigIntegerField(default=0, help_text="Cost of the priced requests, in 1e-10 USD.")
    cache_hits = models.BigIntegerField(default=0, help_text="Requests answered from the response cache.")
    cost_saved_e10 = models.BigIntegerField(default=0, help_text="What the cache hits would have cost, in 1e-10 USD.")
    # Media calls' units (accounting/prices/units.py); audio in whole milliseconds, so the additive upsert is exact.
    images = models.BigIntegerField(default=0, help_text="Images generated or edited.")
    audio_ms = models.BigIntegerField(default=0, help_text="Milliseconds of audio transcribed or translated.")
    characters = models.BigIntegerField(default=0, help_text="Characters of speech input.")

    class Meta:
        ordering = ["-day", "tenant_slug", "provider", "model"]
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(fields=["day", "tenant", "api_key", "provider", "model"],
                                    name="usage_daily_unique_key"),
        ]
        indexes = [models.Index(fields=["tenant", "day"])]

    def __str__(self):
        return f"{self.day} {self.tenant_slug} {self.provider}/{self.model}"

    @property
    def cost(self):
        """USD as a Decimal; None when none of the requests had a price."""
        from decimal import Decimal

        if self.requests and self.unpriced_requests >= self.requests:
            return None
        return Decimal(self.cost_e10).scaleb(self.COST_EXPONENT)


class ModelPrice(models.Model):
    """USD per million tokens for models of one provider type, from `valid_from` on; a row here
    overrides the genai-prices database (the default source, see accounting/prices/book.py).

    `model_pattern` is an exact model id or a shell-style glob (`gpt-4o-mini*`); the most specific
    match wins (exact, then the longest pattern), and among those the latest `valid_from` not after
    the request. Empty cached / reasoning prices fall back to the input / output price. How reasoning
    tokens are billed per provider is explained in accounting/prices/book.py.
    The optional per-unit prices bill media calls' images, audio minutes (by the second) and characters
    (accounting/prices/units.py); empty: this row does not price that unit.
    """

    provider = models.CharField(max_length=64, help_text="Provider type (e.g. 'openai') or a provider config name.")
    model_pattern = models.CharField(max_length=255, help_text="Model id, or a glob such as 'gpt-4o-mini*'.")
    input_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    cached_input_per_million = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                                   help_text="Empty: the input price.")
    output_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    reasoning_per_million = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                                help_text="Empty: the output price.")
    cache_write_per_million = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                                  help_text="Prompt tokens written to a cache; empty: the input price.")
    # Media calls' units (accounting/prices/units.py); empty: this row does not price that unit.
    per_image = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                    help_text="USD per image generated or edited (dall-e-3); empty: no price.")
    per_audio_minute = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                           help_text="USD per minute of audio transcribed or translated "
                                                     "(whisper-1: 0.006), billed by the second; empty: no price.")
    per_million_characters = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                                 help_text="USD per million characters of speech input (tts-1: 15); "
                                                           "empty: no price.")
    valid_from = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=255, blank=True, help_text="Where the price comes from.")

    class Meta:
        ordering = ["provider", "model_pattern", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_pattern", "valid_from"], name="model_price_unique"),
        ]

    def __str__(self):
        return f"{self.provider}/{self.model_pattern} from {self.valid_from:%Y-%m-%d}"


class AuditEntry(models.Model):
    """One admin or management-API write: who, what, when, and which fields changed.

    Written by the domain service that makes the change (accounting/<domain>/services.py), in the same transaction,
    so a change without its audit row (or the reverse) cannot exist. `changes` never holds a secret:
    key material is stripped before the row is written (accounting.audit.services.scrub). The table keeps its
    first name (it began in the gomodel app)."""

    actor = models.CharField(max_length=150, help_text='"master" or the staff user\'s username.')
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "gomodel_auditentry"
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"], name="gomodel_aud_object__5e0a3e_idx")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type} {self.object_id}"


class StoredResponse(models.Model):
    """A /v1/responses answer kept so that `previous_response_id` can continue the conversation (on any
    provider) and GET can return it. Only its tenant can read it; it expires after
    RESPONSES_RETENTION_DAYS (a beat task deletes it). `input_items` is the whole context the model
    saw (earlier turns included), so continuing a conversation is one read."""

    id = models.CharField(primary_key=True, max_length=64)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                               help_text="Empty: made with the master key.")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    model = models.CharField(max_length=255)
    provider = models.CharField(max_length=64)
    previous_response_id = models.CharField(max_length=64, blank=True)
    input_items = models.JSONField(default=list)
    response = models.JSONField(default=dict, help_text="The response object as the client received it.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"])]

    def __str__(self):
        return self.id


class ProviderFile(models.Model):
    """A file uploaded through /v1/files: which tenant owns which provider file id. Every read, list and
    delete of a file goes through this row, scoped to the caller's tenant: another tenant's file id is a 404,
    exactly like an id that never existed, and never shows up in its list."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                               help_text="Empty: uploaded with the master key.")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provider = models.CharField(max_length=64, help_text="The provider config's name the file lives on.")
    file_id = models.CharField(max_length=255, help_text="The provider's id of the file.")
    created_at = models.DateTimeField(default=timezone.now)
    purpose = models.CharField(max_length=64, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    listing = models.JSONField(default=dict, help_text="The file object as the provider answered the upload.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["provider", "file_id"], name="provider_file_unique")]
        indexes = [models.Index(fields=["tenant", "created_at"]), models.Index(fields=["file_id"])]

    def __str__(self):
        return f"{self.provider}:{self.file_id}"


class ProviderBatch(models.Model):
    """A batch created through /v1/batches: which tenant owns which provider batch id (scoped like
    ProviderFile). `billed_at` is set once its result lines are on the usage stream (one event each)."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                               help_text="Empty: created with the master key.")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provider = models.CharField(max_length=64)
    batch_id = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    listing = models.JSONField(default=dict, help_text="The batch object as the provider last answered.")
    billed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["provider", "batch_id"], name="provider_batch_unique")]
        indexes = [models.Index(fields=["tenant", "created_at"]), models.Index(fields=["batch_id"])]

    def __str__(self):
        return f"{self.provider}:{self.batch_id}"
