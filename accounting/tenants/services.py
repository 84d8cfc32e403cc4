"""Writes to tenants and their API keys (each in one transaction with its audit row)."""

from django.db import transaction

from ..audit.services import SYSTEM, record
from ..labels import check_labels
from ..models import ApiKey, Tenant
from .keys import display_prefix, generate_key, hash_key


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
                      allowed_models: list[str] | None = None, labels: dict[str, str] | None = None,
                      **budget) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext, which is never stored and cannot be shown again."""
    plaintext = generate_key()
    key = ApiKey.objects.create(
        tenant=tenant, name=name, key_hash=hash_key(plaintext), prefix=display_prefix(plaintext),
        rpm_limit=rpm, tpm_limit=tpm, concurrency_limit=concurrency, allowed_models=allowed_models or [],
        expires_at=expires_at, labels=check_labels(labels or {}), **budget,  # budget_usd, budget_period, …
    )
    record(actor, "create", key, {"tenant": tenant.pk, "prefix": key.prefix, "name": key.name, "rpm_limit": rpm,
                                  "tpm_limit": tpm, "concurrency_limit": concurrency,
                                  "allowed_models": key.allowed_models, "expires_at": expires_at,
                                  **({"labels": key.labels} if key.labels else {}), **budget})
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
