"""The audit trail of admin and management API writes, and what must never enter it: key material."""

import datetime
import decimal
import re

from .models import AuditEntry

# Field names whose values are secrets: dropped wherever they occur in an audit row's changes.
SECRET_FIELDS = frozenset({"api_key", "api_key_encrypted", "key", "key_hash", "plaintext", "password", "secret",
                           "token"})
REDACTED = "(redacted)"
# A whole tenant key (sk_gom_ + 43 url-safe characters), wherever it turns up; a display prefix
# such as "sk_gom_…AbCd" is not one and stays.
TENANT_KEY = re.compile(r"sk_gom_[A-Za-z0-9_-]{16,}")


def scrub(value):
    """A JSON-ready copy of `value` with every secret-named field removed and any tenant key
    (sk_gom_…) in a string replaced."""
    if isinstance(value, dict):
        return {str(k): scrub(v) for k, v in value.items() if str(k) not in SECRET_FIELDS}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return TENANT_KEY.sub(REDACTED, value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "pk"):  # a related model instance
        return value.pk
    return value


def record(actor: str, action: str, obj, changes: dict | None = None, object_type: str | None = None) -> AuditEntry:
    """Write one audit row; call inside the transaction that makes the change."""
    return AuditEntry.objects.create(
        actor=actor[:150], action=action, object_type=object_type or obj._meta.model_name,
        object_id=str(obj.pk), object_repr=str(obj)[:200], changes=scrub(changes or {}),
    )
