"""Every write to tenants and keys goes through these functions (views and commands only call them)."""

from django.db import transaction

from .keys import display_prefix, generate_key, hash_key
from .models import ApiKey, Tenant


def do_create_tenant(slug: str, name: str = "") -> Tenant:
    return Tenant.objects.create(slug=slug, name=name or slug)


@transaction.atomic
def do_create_api_key(tenant: Tenant, name: str = "", rpm: int | None = None,
                      tpm: int | None = None, expires_at=None, **budget) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext, which is never stored and cannot be shown again."""
    plaintext = generate_key()
    key = ApiKey.objects.create(
        tenant=tenant, name=name, key_hash=hash_key(plaintext), prefix=display_prefix(plaintext),
        rpm_limit=rpm, tpm_limit=tpm, expires_at=expires_at, **budget,  # budget_usd, budget_period, …
    )
    return key, plaintext


def do_revoke_api_key(key: ApiKey) -> ApiKey:
    key.active = False
    key.save(update_fields=["active"])
    return key


def do_reactivate_api_key(key: ApiKey) -> ApiKey:
    key.active = True
    key.save(update_fields=["active"])
    return key
