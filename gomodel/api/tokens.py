"""Staff API tokens (gomodel.models.StaffToken): issued with their plaintext returned once, stored as a
hash, expiring, revocable. Every issue and revoke is audited (accounting.audit) in the same transaction."""

import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounting.audit import services as audit
from gomodel.models import StaffToken, generate_staff_token, hash_staff_token

LAST_USED_EVERY = datetime.timedelta(minutes=5)  # last_used_at is written at most this often per token


def default_expiry(now=None):
    days = settings.STAFF_TOKEN_DAYS
    return (now or timezone.now()) + datetime.timedelta(days=days) if days > 0 else None


def issue_staff_token(user, name: str = "", *, expires_at=..., actor: str = "system") -> tuple[StaffToken, str]:
    """A new token for `user`; (row, plaintext). `expires_at` defaults to STAFF_TOKEN_DAYS from now."""
    plaintext = generate_staff_token()
    with transaction.atomic():
        token = StaffToken.objects.create(
            user=user, name=name, key_hash=hash_staff_token(plaintext),
            prefix=f"{plaintext[:13]}…{plaintext[-4:]}",
            expires_at=default_expiry() if expires_at is ... else expires_at)
        audit.record(actor, "create", token, {"user": user.get_username(), "name": name,
                                              "expires_at": token.expires_at})
    return token, plaintext


def revoke_staff_token(token: StaffToken, *, actor: str = "system") -> StaffToken:
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(actor, "revoke", token, {"revoked_at": token.revoked_at})
    return token


def find_staff_token(plaintext: str):
    """The usable token with this plaintext and its user, or None."""
    token = StaffToken.objects.select_related("user").filter(key_hash=hash_staff_token(plaintext)).first()
    if token is None or not token.is_usable():
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        StaffToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
