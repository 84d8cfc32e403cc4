"""Celery tasks of the stored /v1/responses answers (scheduled by beat in gomodel/celery.py)."""

from celery import shared_task
from django.db import close_old_connections

from . import services


@shared_task(name="accounting.purge_expired_responses", ignore_result=True)
def purge_expired_responses() -> int:
    """Delete stored /v1/responses answers past RESPONSES_RETENTION_DAYS."""
    close_old_connections()
    try:
        return services.purge_expired_responses()
    finally:
        close_old_connections()
