"""Stored /v1/responses answers (accounting/stored_responses/): scoped to one tenant, expiring after
RESPONSES_RETENTION_DAYS, and deleted by the beat task once expired."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounting.models import StoredResponse
from accounting.stored_responses import services as responses_store
from accounting.stored_responses import tasks
from accounting.tenants.services import do_create_tenant

pytestmark = [pytest.mark.django_db(transaction=True)]  # the store closes stale connections


def store(response_id, tenant, days=30):
    responses_store.do_store_response(response_id, tenant.id if tenant else None, None, "gpt-4o-mini", "openai",
                                      [{"role": "user", "content": "Hi"}], {"id": response_id, "output": []},
                                      None, days)


def test_a_response_is_found_only_by_its_own_tenant():
    acme, rival = do_create_tenant("acme", "Acme"), do_create_tenant("rival", "Rival")
    store("resp_a", acme)
    store("resp_m", None)  # the master key's
    assert responses_store.find_response(acme.id, "resp_a").input_items == [{"role": "user", "content": "Hi"}]
    assert responses_store.find_response(rival.id, "resp_a") is None
    assert responses_store.find_response(None, "resp_a") is None
    assert responses_store.find_response(acme.id, "resp_m") is None
    assert responses_store.do_delete_response(rival.id, "resp_a") is False
    assert responses_store.do_delete_response(acme.id, "resp_a") is True
    assert not StoredResponse.objects.filter(id="resp_a").exists()


def test_expired_responses_are_unreadable_and_purged_by_the_task():
    acme = do_create_tenant("acme", "Acme")
    store("resp_old", acme, days=1)
    store("resp_new", acme, days=30)
    StoredResponse.objects.filter(id="resp_old").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert responses_store.find_response(acme.id, "resp_old") is None
    assert tasks.purge_expired_responses() == 1
    assert list(StoredResponse.objects.values_list("id", flat=True)) == ["resp_new"]
    row = StoredResponse.objects.get()
    assert timedelta(days=29, hours=23) < row.expires_at - row.created_at <= timedelta(days=30)


def test_the_purge_is_scheduled_by_beat():
    from gomodel.celery import app

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    assert schedule["responses-retention"]["task"] == "accounting.purge_expired_responses"
