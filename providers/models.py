import dataclasses
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from . import crypto
from .base import Quota, Target, parse_model_quotas
from .catalogue import CATALOGUE, PROVIDER_CHOICES, ProviderSpec

log = logging.getLogger(__name__)


PRIMARY_KEY_LABEL = "key-1"  # the label of a config's own key, the first of its key pool


class ProviderConfig(models.Model):
    """One upstream account. `name` is what clients route by (`name/model` or `provider: name`). Its own key
    (`api_key_encrypted`) is the first of its key pool; `extra_keys` (ProviderKey) are the others."""

    SOURCE_ENV = "env"
    SOURCE_ADMIN = "admin"

    name = models.SlugField(max_length=64, unique=True, help_text="Routing name, e.g. 'openai'.")
    provider_type = models.CharField(max_length=32, choices=PROVIDER_CHOICES)
    base_url = models.URLField(max_length=500, blank=True, help_text="Empty: the catalogue default.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    model_list = models.TextField(blank=True, help_text="Extra model ids, comma separated (<P>_MODELS).")
    enabled = models.BooleanField(default=True)
    source = models.CharField(
        max_length=8, choices=[(SOURCE_ENV, "environment"), (SOURCE_ADMIN, "admin")], default=SOURCE_ADMIN
    )
    # The upstream answered 401/403 to this key: out of the pool until the key is replaced or reinstated.
    api_key_rejected_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The provider account's own quota, shared by every tenant (gomodel/gateway/quotas.py); empty: none.
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)],
                                            help_text="Requests per minute to this provider, all tenants together; "
                                                      "empty: no quota.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)],
                                            help_text="Tokens per minute to this provider, all tenants together; "
                                                      "empty: no quota.")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)],
                                                    help_text="Requests in flight to this provider, all tenants "
                                                              "together; empty: no quota.")
    model_quotas = models.JSONField(default=dict, blank=True, help_text='Per model of this provider, e.g. '
                                    '{"gpt-4o": {"rpm": 500, "tpm": 30000, "concurrency": 20}}; {}: none.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider_type})"

    @property
    def spec(self) -> ProviderSpec:
        return CATALOGUE[self.provider_type]

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or self.spec.default_base_url).rstrip("/")

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def as_target(self) -> Target:
        """The config as the gateway sends to it (key decrypted; ValueError if it cannot be)."""
        return Target(id=self.pk or 0, name=self.name, provider_type=self.provider_type, wire=self.spec.wire,
                      base_url=self.effective_base_url, api_key=self.api_key, extra_models=tuple(self.extra_models),
                      key_label=PRIMARY_KEY_LABEL, quota=self.quota)

    @property
    def quota(self) -> Quota | None:
        """The config's quotas as the hot path reads them; None when it has none (no Redis call at all)."""
        try:
            models_ = parse_model_quotas(self.model_quotas)
        except ValueError:  # validated on every write; a hand-edited row must not take the provider down
            log.error("provider %s: model_quotas is invalid; ignored", self.name)
            models_ = ()
        if self.rpm_limit is None and self.tpm_limit is None and self.concurrency_limit is None and not models_:
            return None
        return Quota(self.rpm_limit, self.tpm_limit, self.concurrency_limit, models_)

    def key_pool(self) -> tuple[list[Target], list[str]]:
        """(the pool's usable keys as targets, the labels of the rejected ones), the config's own key first;
        each decrypted here, once per registry load (ValueError if one cannot be)."""
        primary = self.as_target()
        usable, rejected = [], []
        if self.api_key_rejected_at is None:
            usable.append(primary)
        else:
            rejected.append(PRIMARY_KEY_LABEL)
        for key in self.extra_keys.all():
            if key.rejected_at is not None:
                rejected.append(key.label)
                continue
            try:
                usable.append(dataclasses.replace(primary, api_key=key.api_key, key_label=key.label))
            except ValueError:
                log.error("provider %s key %s cannot be decrypted with GOMODEL_ENCRYPTION_KEYS; left out of its "
                          "pool", self.name, key.label)
        return usable, rejected

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)
        self.api_key_rejected_at = None  # a new key is given its chance

    @property
    def api_key_redacted(self) -> str:
        try:
            return crypto.redact(self.api_key)
        except ValueError:
            return "(undecryptable)"

    @property
    def extra_models(self) -> list[str]:
        return [m.strip() for m in self.model_list.split(",") if m.strip()]

    def clean(self) -> None:
        if self.provider_type not in CATALOGUE:
            raise ValidationError({"provider_type": "Unknown provider type."})
        if not self.effective_base_url:
            raise ValidationError({"base_url": f"{self.spec.label} has no default base URL; set one."})
        try:
            parse_model_quotas(self.model_quotas)
        except ValueError as exc:
            raise ValidationError({"model_quotas": str(exc)})


class ProviderKey(models.Model):
    """One more API key of a provider config's pool (`<P>_API_KEY_2`, `_3`, … or added in the admin), encrypted
    like the config's own. Calls are spread over a pool's keys (gomodel/gateway/key_pool.py)."""

    config = models.ForeignKey(ProviderConfig, on_delete=models.CASCADE, related_name="extra_keys")
    label = models.SlugField(max_length=64, help_text="Names the key in usage, health and the audit trail "
                                                      "(never the key itself), e.g. 'key-2'.")
    api_key_encrypted = models.TextField(editable=False)
    source = models.CharField(max_length=8, choices=[(ProviderConfig.SOURCE_ENV, "environment"),
                                                     (ProviderConfig.SOURCE_ADMIN, "admin")],
                              default=ProviderConfig.SOURCE_ADMIN)
    # The upstream answered 401/403 to this key: out of the pool until the key is replaced or reinstated.
    rejected_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["config_id", "id"]
        constraints = [models.UniqueConstraint(fields=["config", "label"], name="provider_key_label_unique")]

    def __str__(self) -> str:
        return f"{self.config.name}/{self.label}"

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)
        self.rejected_at = None

    @property
    def api_key_redacted(self) -> str:
        try:
            return crypto.redact(self.api_key)
        except ValueError:
            return "(undecryptable)"

    def clean(self) -> None:
        if self.label == PRIMARY_KEY_LABEL:
            raise ValidationError({"label": f"'{PRIMARY_KEY_LABEL}' names the config's own key."})


def parse_alias_targets(value: object) -> list[dict[str, Any]]:
    """Normalise an alias's targets to [{"target": "provider/model", "weight": int >= 1}].

    Accepts a list of "provider/model" strings or {"target", "weight"} objects, or a
    {"provider/model": weight} mapping.
    """
    if isinstance(value, dict):
        value = [{"target": k, "weight": v} for k, v in value.items()]
    if not isinstance(value, list) or not value:
        raise ValueError("targets must be a non-empty list")
    targets = []
    for item in value:
        if isinstance(item, str):
            item = {"target": item, "weight": 1}
        if not isinstance(item, dict) or not isinstance(item.get("target"), str) or "/" not in item["target"]:
            raise ValueError(f"each target must be 'provider/model' (got {item!r})")
        weight = item.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ValueError(f"the weight of {item['target']} must be a whole number >= 1")
        targets.append({"target": item["target"], "weight": weight})
    return targets


class ModelAlias(models.Model):
    """A virtual model: one name that spreads requests over weighted `provider/model` targets,
    skipping targets whose circuit is open, and failing over between them."""

    name = models.CharField(max_length=200, unique=True)
    targets = models.JSONField(help_text='e.g. [{"target": "openai/gpt-4o-mini", "weight": 3}, '
                                         '{"target": "groq/llama-3.1-8b-instant", "weight": 1}]')
    enabled = models.BooleanField(default=True)
    source = models.CharField(max_length=8, choices=[("env", "environment"), ("admin", "admin")], default="admin")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model alias"
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.targets = parse_alias_targets(self.targets)
        except ValueError as exc:
            raise ValidationError({"targets": str(exc)})
