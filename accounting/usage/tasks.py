"""Celery tasks of the usage pipeline: drain and retention (scheduled by beat in gomodel/celery.py)."""

import logging

from celery import shared_task
from django.db import close_old_connections

from . import drain as usage_drain

log = logging.getLogger(__name__)


@shared_task(name="accounting.drain_usage", ignore_result=True)
def drain_usage() -> dict:
    """Drain the usage stream into UsageEvent rows and daily roll-ups (see accounting/usage/drain.py)."""
    close_old_connections()
    try:
        return usage_drain.drain().as_dict()
    finally:
        close_old_connections()


@shared_task(name="accounting.purge_usage_events", ignore_result=True)
def purge_usage_events() -> int:
    """Delete raw usage events older than USAGE_RETENTION_DAYS; the daily roll-ups stay."""
    close_old_connections()
    try:
        return usage_drain.purge_old_events()
    finally:
        close_old_connections()
