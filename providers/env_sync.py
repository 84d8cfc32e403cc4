"""Upsert the providers configured in the environment into ProviderConfig rows (at start-up)."""

import json
import logging
import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from .catalogue import CATALOGUE
from .models import ModelAlias, ProviderConfig, parse_alias_targets

log = logging.getLogger(__name__)


def env_providers(environ: Mapping[str, str]) -> list[dict]:
    """The providers the environment enables, in catalogue order."""
    found = []
    for spec in CATALOGUE.values():
        key = environ.get(f"{spec.env_prefix}_API_KEY", "").strip()
        base_url = environ.get(f"{spec.env_prefix}_BASE_URL", "").strip()
        models = environ.get(f"{spec.env_prefix}_MODELS", "").strip()
        if spec.needs_key and not key:
            continue
        if spec.needs_base_url and not base_url:
            if key and not spec.default_base_url:
                raise ImproperlyConfigured(
                    f"{spec.env_prefix}_API_KEY is set but {spec.env_prefix}_BASE_URL is not: "
                    f"{spec.label} has no default base URL."
                )
            continue
        found.append({"name": spec.key, "provider_type": spec.key, "api_key": key, "base_url": base_url,
                      "models": models})
    return found


@transaction.atomic
def sync_env_providers(environ: Mapping[str, str] | None = None,
                       replace_undecryptable: bool = False) -> list[ProviderConfig]:
    """Upsert the environment's providers. A stored key is re-encrypted only when the environment's key
    differs from it. A stored key this process cannot decrypt is left alone (and logged): it was most
    likely written by a replica with other GOMODEL_ENCRYPTION_KEYS, which overwriting would break;
    `replace_undecryptable` (sync_providers --replace-undecryptable) overwrites it on purpose."""
    wanted = env_providers(os.environ if environ is None else environ)
    synced = []
    for item in wanted:
        config = ProviderConfig.objects.filter(name=item["name"]).first() or ProviderConfig(name=item["name"])
        fields = {"provider_type": item["provider_type"], "base_url": item["base_url"],
                  "model_list": item["models"], "enabled": True, "source": ProviderConfig.SOURCE_ENV}
        changed = config.pk is None or any(getattr(config, k) != v for k, v in fields.items())
        for field, value in fields.items():
            setattr(config, field, value)
        try:
            stale = config.api_key != item["api_key"]
        except ValueError:
            stale = replace_undecryptable
            if not replace_undecryptable:
                log.error("provider %s: the stored key cannot be decrypted with this process's "
                          "GOMODEL_ENCRYPTION_KEYS; left as it is (replicas must share the keys; "
                          "`manage.py sync_providers --replace-undecryptable` overwrites it)", config.name)
        if stale:
            config.set_api_key(item["api_key"])
        if changed or stale:
            config.save()  # only on a change: a save makes every gateway reload its routes
        synced.append(config)
    # An env provider whose variables are gone is disabled, not deleted: usage rows point at it.
    gone = ProviderConfig.objects.filter(source=ProviderConfig.SOURCE_ENV).exclude(
        name__in=[item["name"] for item in wanted]
    )
    for config in gone.filter(enabled=True):
        config.enabled = False
        config.save()
    return synced


def parse_virtual_models(raw: str) -> dict[str, list[dict]]:
    """VIRTUAL_MODELS: {"alias": [targets…]} (see parse_alias_targets for the target forms)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"VIRTUAL_MODELS is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ImproperlyConfigured("VIRTUAL_MODELS must be a JSON object of alias name -> targets.")
    aliases = {}
    for name, targets in data.items():
        try:
            aliases[name] = parse_alias_targets(targets)
        except ValueError as exc:
            raise ImproperlyConfigured(f"VIRTUAL_MODELS alias '{name}': {exc}") from None
    return aliases


@transaction.atomic
def sync_env_aliases(raw: str | None = None) -> list[ModelAlias]:
    wanted = parse_virtual_models(os.environ.get("VIRTUAL_MODELS", "") if raw is None else raw)
    synced = []
    for name, targets in wanted.items():
        alias, _ = ModelAlias.objects.update_or_create(
            name=name, defaults={"targets": targets, "enabled": True, "source": "env"})
        synced.append(alias)
    for alias in ModelAlias.objects.filter(source="env", enabled=True).exclude(name__in=list(wanted)):
        alias.enabled = False
        alias.save()
    return synced
