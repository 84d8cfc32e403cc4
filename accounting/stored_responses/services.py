"""Stored /v1/responses answers: every read and write of StoredResponse goes through here, always
scoped to one tenant (None: the master key), so that no tenant can reach another's responses."""

from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from ..models import StoredResponse


def _scoped(tenant_id):
    live = StoredResponse.objects.filter(expires_at__gt=timezone.now())
    return live.filter(tenant__isnull=True) if tenant_id is None else live.filter(tenant_id=tenant_id)


def do_store_response(response_id: str, tenant_id, api_key_id, model: str, provider: str, input_items: list,
                      response: dict, previous_response_id: str | None, retention_days: int) -> None:
    close_old_connections()
    now = timezone.now()
    StoredResponse.objects.create(
        id=response_id, tenant_id=tenant_id, api_key_id=api_key_id, created_at=now,
        expires_at=now + timedelta(days=retention_days), model=model[:255], provider=provider[:64],
        previous_response_id=previous_response_id or "", input_items=input_items, response=response)


def find_response(tenant_id, response_id: str) -> StoredResponse | None:
    close_old_connections()
    return _scoped(tenant_id).filter(id=response_id).first()


def do_delete_response(tenant_id, response_id: str) -> bool:
    close_old_connections()
    deleted, _ = _scoped(tenant_id).filter(id=response_id).delete()
    return deleted > 0


def purge_expired_responses(now=None) -> int:
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
