"""Writes to provider configs, each in one transaction with its audit row (the admin and the management
API alike). Here rather than in providers/: providers/ may not import accounting/, where the audit
trail lives."""

from django.db import transaction

from providers.catalogue import CATALOGUE
from providers.models import ProviderConfig

from ..audit.services import DomainError, apply_changes, record, save_changes


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
