"""Files uploaded through /v1/files: every read and write of ProviderFile goes through here, always scoped to
one tenant (None: the master key), so that no tenant can reach, list or delete another's files."""

from django.db import close_old_connections

from ..models import ProviderFile


def _scoped(tenant_id):
    files = ProviderFile.objects.all()
    return files.filter(tenant__isnull=True) if tenant_id is None else files.filter(tenant_id=tenant_id)


def do_record_file(tenant_id, api_key_id, provider: str, listing: dict) -> ProviderFile:
    close_old_connections()
    size = listing.get("bytes")
    return ProviderFile.objects.create(
        tenant_id=tenant_id, api_key_id=api_key_id, provider=provider[:64], file_id=str(listing["id"])[:255],
        purpose=str(listing.get("purpose") or "")[:64], filename=str(listing.get("filename") or "")[:255],
        size_bytes=size if isinstance(size, int) else 0, listing=listing)


def find_file(tenant_id, file_id: str) -> ProviderFile | None:
    close_old_connections()
    return _scoped(tenant_id).filter(file_id=file_id).first()


def list_files(tenant_id, limit: int, order: str, after: str | None, purpose: str | None) -> tuple[list, bool]:
    """One page of the tenant's files (newest first unless order='asc'), and whether more follow."""
    close_old_connections()
    files = _scoped(tenant_id)
    if purpose:
        files = files.filter(purpose=purpose)
    files = files.order_by("created_at", "id") if order == "asc" else files.order_by("-created_at", "-id")
    if after:
        anchor = _scoped(tenant_id).filter(file_id=after).first()
        if anchor is not None:
            if order == "asc":
                files = files.filter(created_at__gte=anchor.created_at).exclude(
                    created_at=anchor.created_at, id__lte=anchor.id)
            else:
                files = files.filter(created_at__lte=anchor.created_at).exclude(
                    created_at=anchor.created_at, id__gte=anchor.id)
    page = list(files[:limit + 1])
    return page[:limit], len(page) > limit


def do_forget_file(tenant_id, file_id: str) -> bool:
    close_old_connections()
    deleted, _ = _scoped(tenant_id).filter(file_id=file_id).delete()
    return deleted > 0
