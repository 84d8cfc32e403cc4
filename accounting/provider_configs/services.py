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
from providers.models import PRIMARY_KEY_LABEL, ModelAlias, ProviderConfig, ProviderKey

from ..audit.services import SYSTEM, DomainError, apply_changes, record, save_changes

log = logging.getLogger(__name__)


def check_provider_change(config: ProviderConfig, new_base_url: str, new_api_key: str | None,
                          clears_key: bool = False, new_provider_type: str | None = None,
                          resends_extra_keys: bool = False) -> None:
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
    if new_url != old_url and not resends_extra_keys and config.extra_keys.exists():
        raise DomainError({"extra_api_keys": "Changing the base URL sends the further keys to the new host: send "
                                             "extra_api_keys again in the same request ([] removes them)."})


@transaction.atomic
def do_create_provider(actor: str, data: dict) -> ProviderConfig:
    data = dict(data)
    api_key = data.pop("api_key", "") or ""
    extra_keys = data.pop("extra_api_keys", None)
    config = ProviderConfig(source=ProviderConfig.SOURCE_ADMIN, **data)
    if api_key:
        config.set_api_key(api_key)
    config.save()
    record(actor, "create", config, {**data, "api_key_set": bool(api_key)})
    if extra_keys:
        do_set_provider_keys(actor, config, extra_keys)
    return config


@transaction.atomic
def do_update_provider(actor: str, config: ProviderConfig, data: dict, clear_api_key: bool = False) -> ProviderConfig:
    """`api_key`: write-only; empty or missing keeps the stored one (unless `clear_api_key`). `extra_api_keys`
    (write-only too): when given, the admin-added further keys become exactly these (do_set_provider_keys)."""
    data = dict(data)
    api_key = data.pop("api_key", None) or None
    extra_keys = data.pop("extra_api_keys", None)
    check_provider_change(config, data.get("base_url", config.base_url), api_key, clear_api_key,
                          data.get("provider_type"), extra_keys is not None)
    changes = apply_changes(config, data)
    extra = []
    if api_key:
        config.set_api_key(api_key)
        extra += ["api_key_encrypted", "api_key_rejected_at"]
    elif clear_api_key and config.api_key_encrypted:
        config.api_key_encrypted = ""
        extra.append("api_key_encrypted")
    if changes or extra:
        save_changes(config, [*changes, *extra])
        record(actor, "update", config, {**changes, **({"api_key_changed": True} if extra else {})})
    if extra_keys is not None:
        do_set_provider_keys(actor, config, extra_keys)
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
                  "model_list": item["models"], "enabled": True, "source": ProviderConfig.SOURCE_ENV,
                  **{name: item[name] for name in ("rpm_limit", "tpm_limit", "concurrency_limit", "model_quotas")
                     if name in item}}
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
        _sync_env_keys(actor, config, item.get("extra_keys", []), replace_undecryptable)
        synced.append(config)
    # An env provider whose variables are gone is disabled, not deleted: usage rows point at it.
    gone = ProviderConfig.objects.filter(source=ProviderConfig.SOURCE_ENV, enabled=True).exclude(
        name__in=[item["name"] for item in wanted])
    for config in gone:
        config.enabled = False
        config.save()
        record(actor, "disable", config, {"enabled": [True, False]})
    return synced


def _sync_env_keys(actor: str, config: ProviderConfig, wanted: list[tuple[str, str]],
                   replace_undecryptable: bool) -> None:
    """<P>_API_KEY_2, _3, … as the config's env keys: added, re-encrypted when changed, removed when gone."""
    stored = {key.label: key for key in config.extra_keys.filter(source=ProviderConfig.SOURCE_ENV)}
    for label, plaintext in wanted:
        key = stored.pop(label, None)
        if key is None:
            key = ProviderKey(config=config, label=label, source=ProviderConfig.SOURCE_ENV)
            key.set_api_key(plaintext)
            key.save()
            record(actor, "create", key, {"label": label, "source": key.source, "api_key_set": True})
            continue
        try:
            stale = key.api_key != plaintext
        except ValueError:
            stale = replace_undecryptable
            if not replace_undecryptable:
                log.error("provider %s, key %s: the stored key cannot be decrypted with this process's "
                          "GOMODEL_ENCRYPTION_KEYS; left as it is", config.name, label)
        if stale:
            key.set_api_key(plaintext)
            key.save()
            record(actor, "update", key, {"api_key_changed": True})
    for key in stored.values():
        record(actor, "delete", key, {"label": key.label})
        key.delete()


# -- the key pool (admin, API, and the gateway when an upstream rejects a key) -------------------------

def _check_label(config: ProviderConfig, label: str) -> None:
    if not label or label == PRIMARY_KEY_LABEL or config.extra_keys.filter(label=label).exists():
        raise DomainError({"label": f"'{label}' is taken (or names the config's own key, '{PRIMARY_KEY_LABEL}')."})


@transaction.atomic
def do_add_provider_key(actor: str, config: ProviderConfig, api_key: str, label: str = "") -> ProviderKey:
    """One more key in the config's pool; `label` defaults to the next free "key-N"."""
    if config.source == ProviderConfig.SOURCE_ENV:
        raise DomainError({"source": f"Provider '{config.name}' is defined by environment variables; add keys "
                                     "there (<P>_API_KEY_2, _3, …)."})
    if not api_key:
        raise DomainError({"api_key": "An API key is required."})
    if not label:
        taken = set(config.extra_keys.values_list("label", flat=True))
        label = next(f"key-{n}" for n in range(2, len(taken) + 3) if f"key-{n}" not in taken)
    _check_label(config, label)
    key = ProviderKey(config=config, label=label, source=ProviderConfig.SOURCE_ADMIN)
    key.set_api_key(api_key)
    key.save()
    record(actor, "create", key, {"label": label, "api_key_set": True})
    return key


@transaction.atomic
def do_update_provider_key(actor: str, key: ProviderKey, label: str | None = None, api_key: str = "",
                           reinstate: bool = False) -> ProviderKey:
    """A new label, a new key (which is given its chance again), or a rejected key put back in the pool."""
    if key.source == ProviderConfig.SOURCE_ENV and (api_key or (label and label != key.label)):
        raise DomainError({"source": "This key is defined by environment variables; change it there."})
    changes: dict = {}
    if label and label != key.label:
        _check_label(key.config, label)
        changes["label"] = [key.label, label]
        key.label = label
    if api_key:
        key.set_api_key(api_key)
        changes["api_key_changed"] = True
    if reinstate and key.rejected_at is not None:
        changes["rejected_at"] = [key.rejected_at, None]
        key.rejected_at = None
    if changes:
        key.save()
        record(actor, "update", key, changes)
    return key


@transaction.atomic
def do_remove_provider_key(actor: str, key: ProviderKey) -> None:
    if key.source == ProviderConfig.SOURCE_ENV:
        raise DomainError({"source": "This key is defined by environment variables; remove it there."})
    record(actor, "delete", key, {"label": key.label})
    key.delete()


@transaction.atomic
def do_set_provider_keys(actor: str, config: ProviderConfig, keys: list[dict]) -> None:
    """The management API's `extra_api_keys`: the config's admin-added keys become exactly these
    ([{"api_key", "label"?}]; a label already there gets the new key, the others are removed)."""
    stored = {key.label: key for key in config.extra_keys.filter(source=ProviderConfig.SOURCE_ADMIN)}
    for item in keys:
        key = stored.pop(item.get("label") or "", None)
        if key is not None:
            do_update_provider_key(actor, key, api_key=item["api_key"])
        else:
            do_add_provider_key(actor, config, item["api_key"], item.get("label") or "")
    for key in stored.values():
        do_remove_provider_key(actor, key)


@transaction.atomic
def do_reject_provider_key(config_id: int, label: str, status: int, *, actor: str = SYSTEM) -> bool:
    """The upstream answered 401/403 to this key: it leaves the pool (every gateway reloads it), flagged in the
    admin and /health/ready, until the key is replaced or reinstated. False when it already was (or is gone)."""
    from django.utils import timezone

    now = timezone.now()
    if label == PRIMARY_KEY_LABEL:
        config = ProviderConfig.objects.select_for_update().filter(pk=config_id).first()
        if config is None or config.api_key_rejected_at is not None:
            return False
        config.api_key_rejected_at = now
        config.save(update_fields=["api_key_rejected_at", "updated_at"])
        record(actor, "reject_key", config, {"key": label, "upstream_status": status})
        return True
    key = ProviderKey.objects.select_for_update().filter(config_id=config_id, label=label).first()
    if key is None or key.rejected_at is not None:
        return False
    key.rejected_at = now
    key.save(update_fields=["rejected_at", "updated_at"])
    record(actor, "reject_key", key, {"key": label, "upstream_status": status})
    return True


@transaction.atomic
def do_reinstate_provider_key(actor: str, config: ProviderConfig) -> ProviderConfig:
    """The config's own key back in its pool after a rejection (e.g. the upstream account was fixed)."""
    if config.api_key_rejected_at is not None:
        record(actor, "update", config, {"api_key_rejected_at": [config.api_key_rejected_at, None]})
        config.api_key_rejected_at = None
        config.save(update_fields=["api_key_rejected_at", "updated_at"])
    return config


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
    for key in ProviderKey.objects.select_related("config").select_for_update(of=("self",)):
        try:
            key.api_key_encrypted = crypto.rotate(key.api_key_encrypted)
        except ValueError:
            failed.append(f"{key.config.name}/{key.label}")
            continue
        key.save(update_fields=["api_key_encrypted", "updated_at"])
        record(actor, "rotate_key", key, {"api_key_reencrypted": True})
        rotated += 1
    return rotated, failed
