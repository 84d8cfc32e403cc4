"""Writes to provider rows (ProviderConfig, ModelAlias), each in one transaction with its audit row:
the admin, the management API, the start-up sync of the environment's providers (`sync_providers`)
and the key rotation (`rotate_provider_keys`) alike.

(Here rather than in providers/: providers/ may not import accounting/, where the audit trail lives.
What the environment asks for is read by providers.env_sync, which writes nothing.)"""

import logging
import os
from collections.abc import Mapping

from django.db import transaction

from providers import crypto
from providers.catalogue import CATALOGUE
from providers.env_sync import env_providers, parse_virtual_models
from providers.models import ModelAlias, ProviderConfig

from ..audit.services import SYSTEM, DomainError, apply_changes, record, save_changes

log = logging.getLogger(__name__)


def check_provider_change(config: ProviderConfig, new_base_url: str, new_api_key: str | None,
                          clears_key: bool = False, new_provider_type: str | None = None) -> None:
    """The rules for changing a stored provider: env-defined rows are changed in the environment; a new base
    URL needs the key again (else whoever may edit the URL could send the stored key to a host of theirs)."""
    if config.pk is None:
        return
    if config.source == ProviderConfig.SOURCE_ENV:
        raise DomainError({"source": f"Provider '{config.name}' is defined by environment variables; change it "
                                     "there."})
    old_url = config.effective_base_url
    spec = CATALOGUE.get(new_provider_type or config.provider_type, config.spec)
    new_url = (new_base_url or spec.default_base_url).rstrip("/")
    if new_url != old_url and config.api_key_encrypted and not new_api_key and not clears_key:
        raise DomainError({"api_key": "Changing the base URL sends the stored key to the new host: send the API "
                                      "key again in the same request."})


@transaction.atomic
def do_create_provider(actor: str, data: dict) -> ProviderConfig:
    data = dict(data)
    api_key = data.pop("api_key", "") or ""
    config = ProviderConfig(source=ProviderConfig.SOURCE_ADMIN, **data)
    if api_key:
        config.set_api_key(api_key)
    config.save()
    record(actor, "create", config, {**data, "api_key_set": bool(api_key)})
    return config


@transaction.atomic
def do_update_provider(actor: str, config: ProviderConfig, data: dict, clear_api_key: bool = False) -> ProviderConfig:
    """`api_key`: write-only; empty or missing keeps the stored one (unless `clear_api_key`)."""
    data = dict(data)
    api_key = data.pop("api_key", None) or None
    check_provider_change(config, data.get("base_url", config.base_url), api_key, clear_api_key,
                          data.get("provider_type"))
    changes = apply_changes(config, data)
    extra = []
    if api_key:
        config.set_api_key(api_key)
        extra.append("api_key_encrypted")
    elif clear_api_key and config.api_key_encrypted:
        config.api_key_encrypted = ""
        extra.append("api_key_encrypted")
    if changes or extra:
        save_changes(config, [*changes, *extra])
        record(actor, "update", config, {**changes, **({"api_key_changed": True} if extra else {})})
    return config


@transaction.atomic
def do_set_provider_enabled(actor: str, config: ProviderConfig, enabled: bool) -> ProviderConfig:
    if config.source == ProviderConfig.SOURCE_ENV:
        raise DomainError({"source": f"Provider '{config.name}' is defined by environment variables; change it "
                                     "there."})
    if config.enabled != enabled:
        config.enabled = enabled
        config.save(update_fields=["enabled", "updated_at"])
        record(actor, "enable" if enabled else "disable", config, {"enabled": [not enabled, enabled]})
    return config


# -- the environment's providers and virtual models (start-up) ----------------------------------------

@transaction.atomic
def do_sync_env_providers(environ: Mapping[str, str] | None = None, replace_undecryptable: bool = False, *,
                          actor: str = SYSTEM) -> list[ProviderConfig]:
    """Upsert the environment's providers, each change audited. A stored key is re-encrypted only when the
    environment's key differs from it. A stored key this process cannot decrypt is left alone (and logged):
    it was most likely written by a replica with other GOMODEL_ENCRYPTION_KEYS, which overwriting would
    break; `replace_undecryptable` (sync_providers --replace-undecryptable) overwrites it on purpose."""
    wanted = env_providers(os.environ if environ is None else environ)
    synced = []
    for item in wanted:
        config = ProviderConfig.objects.filter(name=item["name"]).first() or ProviderConfig(name=item["name"])
        adding = config.pk is None
        fields = {"provider_type": item["provider_type"], "base_url": item["base_url"],
                  "model_list": item["models"], "enabled": True, "source": ProviderConfig.SOURCE_ENV}
        changes = apply_changes(config, fields)
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
        if adding or changes or stale:
            config.save()  # only on a change: a save makes every gateway reload its routes
            if adding:
                record(actor, "create", config, {"name": config.name, **fields, "api_key_set": bool(item["api_key"])})
            else:
                record(actor, "update", config, {**changes, **({"api_key_changed": True} if stale else {})})
        synced.append(config)
    # An env provider whose variables are gone is disabled, not deleted: usage rows point at it.
    gone = ProviderConfig.objects.filter(source=ProviderConfig.SOURCE_ENV, enabled=True).exclude(
        name__in=[item["name"] for item in wanted])
    for config in gone:
        config.enabled = False
        config.save()
        record(actor, "disable", config, {"enabled": [True, False]})
    return synced


@transaction.atomic
def do_sync_env_aliases(raw: str | None = None, *, actor: str = SYSTEM) -> list[ModelAlias]:
    """Upsert VIRTUAL_MODELS' aliases, each change audited; an env alias no longer there is disabled."""
    wanted = parse_virtual_models(os.environ.get("VIRTUAL_MODELS", "") if raw is None else raw)
    synced = []
    for name, targets in wanted.items():
        alias = ModelAlias.objects.filter(name=name).first() or ModelAlias(name=name)
        adding = alias.pk is None
        fields = {"targets": targets, "enabled": True, "source": "env"}
        changes = apply_changes(alias, fields)
        if adding or changes:
            alias.save()
            record(actor, "create" if adding else "update", alias, {"name": name, **fields} if adding else changes)
        synced.append(alias)
    for alias in ModelAlias.objects.filter(source="env", enabled=True).exclude(name__in=list(wanted)):
        alias.enabled = False
        alias.save()
        record(actor, "disable", alias, {"enabled": [True, False]})
    return synced


# -- key rotation -------------------------------------------------------------------------------------

@transaction.atomic
def do_rotate_provider_keys(*, actor: str = SYSTEM) -> tuple[int, list[str]]:
    """Re-encrypt every stored provider key with the newest of GOMODEL_ENCRYPTION_KEYS, one audit row per
    key re-encrypted; returns (how many, the names of the configs no configured key decrypts)."""
    rotated, failed = 0, []
    for config in ProviderConfig.objects.exclude(api_key_encrypted="").select_for_update():
        try:
            config.api_key_encrypted = crypto.rotate(config.api_key_encrypted)
        except ValueError:
            failed.append(config.name)
            continue
        config.save(update_fields=["api_key_encrypted", "updated_at"])
        record(actor, "rotate_key", config, {"api_key_reencrypted": True})
        rotated += 1
    return rotated, failed
