"""Every write to tenants, keys, prices and provider configs goes through these functions — the admin, the
management API and the management commands alike — each in one transaction with its audit row
(accounting.audit.record). Saving through the ORM (never QuerySet.update) lets the post_save signals
clear every gateway's caches, so a change is live everywhere as soon as it commits."""

from django.db import transaction

from providers.catalogue import CATALOGUE
from providers.models import ProviderConfig

from .audit import record
from .keys import display_prefix, generate_key, hash_key
from .models import ApiKey, ModelPrice, Tenant

SYSTEM = "system"  # the actor of writes made by management commands and start-up code


class DomainError(ValueError):
    """A write the rules refuse: {field: message}, shown as a 400 (API) or a form error (admin)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _apply(instance, data: dict) -> dict:
    """Set the given fields; return {field: [old, new]} for those that changed."""
    changes = {}
    for name, value in data.items():
        old = getattr(instance, name)
        if old != value:
            changes[name] = [old, value]
            setattr(instance, name, value)
    return changes


def _save_changes(instance, fields):
    fields = list(fields)
    if fields:
        if any(f.name == "updated_at" for f in instance._meta.fields):
            fields.append("updated_at")
        instance.save(update_fields=fields)


@transaction.atomic
def do_update(actor: str, instance, data: dict):
    """Apply the fields, save only what changed, and audit it."""
    changes = _apply(instance, data)
    if changes:
        _save_changes(instance, changes)
        record(actor, "update", instance, changes)
    return instance


@transaction.atomic
def do_save_form(actor: str, instance, changed: dict, adding: bool):
    """An admin form's save (a model without a dedicated function here): the row and its audit entry."""
    instance.save()
    record(actor, "create" if adding else "update", instance, changed)
    return instance


@transaction.atomic
def do_delete(actor: str, instance) -> None:
    record(actor, "delete", instance, {})
    instance.delete()


# -- tenants ----------------------------------------------------------------------------------------

@transaction.atomic
def do_create_tenant(slug: str, name: str = "", *, actor: str = SYSTEM, **fields) -> Tenant:
    tenant = Tenant(slug=slug, name=name or slug, **fields)
    tenant.save()
    record(actor, "create", tenant, {"slug": tenant.slug, "name": tenant.name, **fields})
    return tenant


@transaction.atomic
def do_set_tenant_active(actor: str, tenant: Tenant, active: bool) -> Tenant:
    if tenant.active != active:
        tenant.active = active
        tenant.save(update_fields=["active"])
        record(actor, "reactivate" if active else "deactivate", tenant, {"active": [not active, active]})
    return tenant


# -- API keys ---------------------------------------------------------------------------------------

@transaction.atomic
def do_create_api_key(tenant: Tenant, name: str = "", rpm: int | None = None, tpm: int | None = None,
                      expires_at=None, *, actor: str = SYSTEM, concurrency: int | None = None,
                      allowed_models: list[str] | None = None, **budget) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext, which is never stored and cannot be shown again."""
    plaintext = generate_key()
    key = ApiKey.objects.create(
        tenant=tenant, name=name, key_hash=hash_key(plaintext), prefix=display_prefix(plaintext),
        rpm_limit=rpm, tpm_limit=tpm, concurrency_limit=concurrency, allowed_models=allowed_models or [],
        expires_at=expires_at, **budget,  # budget_usd, budget_period, …
    )
    record(actor, "create", key, {"tenant": tenant.pk, "prefix": key.prefix, "name": key.name, "rpm_limit": rpm,
                                  "tpm_limit": tpm, "concurrency_limit": concurrency,
                                  "allowed_models": key.allowed_models, "expires_at": expires_at, **budget})
    return key, plaintext


@transaction.atomic
def do_revoke_api_key(key: ApiKey, *, actor: str = SYSTEM) -> ApiKey:
    if key.active:
        key.active = False
        key.save(update_fields=["active"])
        record(actor, "revoke", key, {"active": [True, False]})
    return key


@transaction.atomic
def do_reactivate_api_key(key: ApiKey, *, actor: str = SYSTEM) -> ApiKey:
    if not key.active:
        key.active = True
        key.save(update_fields=["active"])
        record(actor, "reactivate", key, {"active": [False, True]})
    return key


# -- prices -----------------------------------------------------------------------------------------

@transaction.atomic
def do_create_price(actor: str, data: dict) -> ModelPrice:
    price = ModelPrice.objects.create(**data)
    record(actor, "create", price, data)
    return price


# -- provider configs -------------------------------------------------------------------------------

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
    changes = _apply(config, data)
    extra = []
    if api_key:
        config.set_api_key(api_key)
        extra.append("api_key_encrypted")
    elif clear_api_key and config.api_key_encrypted:
        config.api_key_encrypted = ""
        extra.append("api_key_encrypted")
    if changes or extra:
        _save_changes(config, [*changes, *extra])
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
