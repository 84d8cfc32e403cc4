"""The audited write: every write to tenants, keys, prices and provider configs goes through a domain
service (accounting/<domain>/services.py) — the admin, the management API, the management commands and
start-up code alike — each in one transaction with its audit row (`record`). This module holds the
audit trail, what must never enter it (key material), and the generic writes the domains share.
Saving through the ORM (never QuerySet.update) lets the post_save signals clear every gateway's
caches, so a change is live everywhere as soon as it commits."""

import datetime
import decimal
import re

from django.db import transaction

from ..models import AuditEntry

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


SYSTEM = "system"  # the actor of writes made by management commands and start-up code


class DomainError(ValueError):
    """A write the rules refuse: {field: message}, shown as a 400 (API) or a form error (admin)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def apply_changes(instance, data: dict) -> dict:
    """Set the given fields; return {field: [old, new]} for those that changed."""
    changes = {}
    for name, value in data.items():
        old = getattr(instance, name)
        if old != value:
            changes[name] = [old, value]
            setattr(instance, name, value)
    return changes


def save_changes(instance, fields):
    fields = list(fields)
    if fields:
        if any(f.name == "updated_at" for f in instance._meta.fields):
            fields.append("updated_at")
        instance.save(update_fields=fields)


@transaction.atomic
def do_update(actor: str, instance, data: dict):
    """Apply the fields, save only what changed, and audit it."""
    changes = apply_changes(instance, data)
    if changes:
        save_changes(instance, changes)
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
