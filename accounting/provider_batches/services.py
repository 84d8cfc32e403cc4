"""Batches created through /v1/batches: every read and write of ProviderBatch goes through here, always scoped
to one tenant (None: the master key), so that no tenant can reach, list or cancel another's batches."""

from django.db import close_old_connections

from ..models import ProviderBatch

FINISHED = ("completed", "failed", "expired", "cancelled")  # the provider will not change these any more


def _scoped(tenant_id):
    batches = ProviderBatch.objects.all()
    return batches.filter(tenant__isnull=True) if tenant_id is None else batches.filter(tenant_id=tenant_id)


def do_record_batch(tenant_id, api_key_id, provider: str, listing: dict) -> ProviderBatch:
    close_old_connections()
    return ProviderBatch.objects.create(
        tenant_id=tenant_id, api_key_id=api_key_id, provider=provider[:64], batch_id=str(listing["id"])[:255],
        endpoint=str(listing.get("endpoint") or "")[:64], status=str(listing.get("status") or "")[:32],
        listing=listing)


def find_batch(tenant_id, batch_id: str) -> ProviderBatch | None:
    close_old_connections()
    return _scoped(tenant_id).filter(batch_id=batch_id).first()


def do_update_batch(batch: ProviderBatch, listing: dict) -> None:
    """The provider's latest answer about the batch (its status); the id and owner never change."""
    close_old_connections()
    batch.listing = listing
    batch.status = str(listing.get("status") or "")[:32]
    ProviderBatch.objects.filter(pk=batch.pk).update(listing=batch.listing, status=batch.status)


def list_batches(tenant_id, limit: int, after: str | None) -> tuple[list, bool]:
    """One page of the tenant's batches, newest first, and whether more follow."""
    close_old_connections()
    batches = _scoped(tenant_id).order_by("-created_at", "-id")
    if after:
        anchor = _scoped(tenant_id).filter(batch_id=after).first()
        if anchor is not None:
            batches = batches.filter(created_at__lte=anchor.created_at).exclude(
                created_at=anchor.created_at, id__gte=anchor.id)
    page = list(batches[:limit + 1])
    return page[:limit], len(page) > limit


def unbilled() -> list[ProviderBatch]:
    """The batches whose results are not billed yet (the poller's work list)."""
    close_old_connections()
    return list(ProviderBatch.objects.filter(billed_at__isnull=True).select_related("tenant", "api_key")
                .order_by("created_at")[:500])
