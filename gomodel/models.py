import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# The audit trail moved to accounting (the domain services that write it live there); re-exported for
# older imports.
from accounting.models import AuditEntry  # noqa: F401

STAFF_TOKEN_PREFIX = "gm_staff_"


def hash_staff_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_staff_token() -> str:
    return STAFF_TOKEN_PREFIX + secrets.token_urlsafe(32)


class StaffToken(models.Model):
    """A staff user's management API token (`Authorization: Bearer gm_staff_…`). Only its SHA-256 is
    stored (as for team keys): the plaintext is shown once, when it is issued. It stops working at
    `expires_at` (STAFF_TOKEN_DAYS after issue by default), when revoked, or when its user is no longer
    active staff; it may do what the user's Django permissions allow."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What it is for (a script, a CI job).")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=32, editable=False, help_text="Its first and last characters.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never (not recommended).")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "staff API token"

    def __str__(self):
        return f"{self.prefix} ({self.user})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
