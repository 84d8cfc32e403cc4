"""The Django admin with the test client: tenants, keys (the secret shown once), provider configs (catalogue,
write-only encrypted key, test connection, env providers), prices, aliases and read-only usage with totals."""

import logging
import re
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from accounting.models import ApiKey, ModelPrice, Tenant, UsageEvent
from accounting.tenants.keys import hash_key
from accounting.usage.reports import today_utc
from gomodel.gateway.provider_probe import test_connection as run_connection_test
from providers.catalogue import CATALOGUE
from providers.models import ModelAlias, ProviderConfig
from tests import fake_upstream

from .conftest import event, store_events

KEYS = "/admin/accounting/apikey/"
TENANTS = "/admin/accounting/tenant/"
PROVIDERS = "/admin/providers/providerconfig/"


# -- tenants -----------------------------------------------------------------------------------------

def test_tenant_list_shows_active_keys_this_months_requests_spend_and_budget(admin_client, acme, prices):
    from accounting.tenants.services import do_create_api_key, do_revoke_api_key

    tenant, key, _ = acme
    revoked, _ = do_create_api_key(tenant, name="old")
    do_revoke_api_key(revoked)
    now = timezone.now()
    store_events(*[event(tenant, key, when=now - timedelta(seconds=i)) for i in range(3)])
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    store_events(event(tenant, key, when=month_start - timedelta(hours=1)))  # last month: not counted
    Tenant.objects.create(slug="idle", name="Idle")

    page = admin_client.get(TENANTS)
    assert page.status_code == 200
    rows = {t.slug: t for t in page.context_data["cl"].result_list}
    assert (rows["acme"].n_active_keys, rows["acme"].n_month_requests) == (1, 3)
    assert (rows["idle"].n_active_keys, rows["idle"].n_month_requests) == (0, 0)
    html = page.content.decode()
    # 3 × (10 prompt × $0.15 + 5 completion × $0.60) per million tokens
    assert "0.0000135" in html
    assert "no budget" in html
    assert "issue a key" in html and "statement" in html


def test_tenant_page_lists_its_keys_inline_without_adding_one(admin_client, acme):
    tenant, key, plaintext = acme
    page = admin_client.get(f"{TENANTS}{tenant.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert key.prefix in html and "active" in html
    assert plaintext not in html and key.key_hash not in html


# -- API keys ----------------------------------------------------------------------------------------

def test_creating_a_key_shows_the_plaintext_once_and_never_again(admin_client, acme, caplog):
    tenant, _, _ = acme
    caplog.set_level(logging.DEBUG)
    response = admin_client.post(f"{KEYS}add/", {"tenant": tenant.pk, "name": "billing", "rpm_limit": "60",
                                                 "tpm_limit": "", "expires_at_0": "", "expires_at_1": "",
                                                 "budget_usd": "2.50", "budget_period": "weekly",
                                                 "budget_soft_percent": ""})
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "admin/accounting/apikey/created.html"
    assert "no-store" in response["Cache-Control"]
    plaintext = re.search(r'id="new-api-key">([^<]+)<', response.content.decode()).group(1)
    key = ApiKey.objects.get(name="billing")
    assert key.key_hash == hash_key(plaintext) and key.rpm_limit == 60 and key.tenant == tenant
    assert (key.budget_usd, key.budget_period) == (Decimal("2.50"), "weekly")
    assert plaintext.endswith(key.prefix[-4:])
    assert list(get_messages(response.wsgi_request)) == []  # not a message that could be shown again

    for url in (KEYS, f"{KEYS}{key.pk}/change/", f"{TENANTS}{tenant.pk}/change/", f"{KEYS}{key.pk}/history/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert plaintext not in page.content.decode(), url
    assert plaintext not in caplog.text
    assert plaintext not in str(key.__dict__)


def test_the_add_page_can_preselect_a_tenant(admin_client, acme):
    tenant, _, _ = acme
    page = admin_client.get(f"{KEYS}add/?tenant={tenant.pk}")
    assert page.status_code == 200
    assert page.context_data["adminform"].form.initial["tenant"] == str(tenant.pk)


def test_key_list_shows_prefix_tenant_last_used_limits_and_state(admin_client, acme):
    tenant, key, _ = acme
    key.last_used_at = timezone.now()
    key.tpm_limit = 12345
    key.save()
    expired = ApiKey.objects.create(tenant=tenant, name="expired", key_hash="x" * 64, prefix="sk_gom_…exp1",
                                    expires_at=timezone.now() - timedelta(days=1))
    html = admin_client.get(KEYS).content.decode()
    for text in (key.prefix, "acme", "12,345 tpm", "active", "expired", expired.prefix):
        assert text in html
    assert admin_client.get(f"{KEYS}?state=expired").context_data["cl"].result_count == 1


def test_revoke_and_reactivate_actions(admin_client, acme):
    _, key, _ = acme
    response = admin_client.post(KEYS, {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.active is False
    assert "revoked" in response.content.decode()
    admin_client.post(KEYS, {"action": "reactivate", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.active is True


def test_search_keys_by_prefix_name_and_whole_key(admin_client, acme):
    from accounting.tenants.services import do_create_api_key

    tenant, key, plaintext = acme
    other, _ = do_create_api_key(tenant, name="reporting")

    def found(term):
        return {k.pk for k in admin_client.get(KEYS, {"q": term}).context_data["cl"].result_list}

    assert found(key.prefix[-4:]) == {key.pk} or key.prefix[-4:] == other.prefix[-4:]
    assert found("reporting") == {other.pk}
    assert found(plaintext) == {key.pk}  # pasted whole: found by its hash


def test_a_key_revoked_in_admin_is_refused_by_the_running_gateway_within_a_second(gateway, provider, tenant_key,
                                                                               admin_client):
    import time

    _, key, plaintext = tenant_key

    def ask():
        return httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {plaintext}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})

    assert ask().status_code == 200  # now cached in the gateway
    admin_client.post(KEYS, {"action": "revoke", "_selected_action": [key.pk]})
    deadline = time.monotonic() + 1.0
    while ask().status_code != 401:
        assert time.monotonic() < deadline, "the gateway still accepts a key revoked a second ago"
        time.sleep(0.05)


# -- provider configs --------------------------------------------------------------------------------

def test_provider_type_comes_from_the_catalogue_with_its_default_base_url(admin_client):
    page = admin_client.get(f"{PROVIDERS}add/?provider_type=groq")
    assert page.status_code == 200
    form = page.context_data["adminform"].form
    assert form.initial["base_url"] == "https://api.groq.com/openai/v1"
    choices = [value for value, _ in form.fields["provider_type"].choices if value]
    assert choices == list(CATALOGUE) and len(choices) == 14
    html = page.content.decode()
    assert "data-default-base-urls" in html and "https://api.deepseek.com" in html
    assert "dashboard/provider_form.js" in html


def test_provider_key_is_write_only_encrypted_and_shown_redacted(admin_client):
    secret = "sk-live-abcdefghijklmnop1234"
    response = admin_client.post(f"{PROVIDERS}add/", {
        "name": "my-openai", "provider_type": "openai", "base_url": "https://api.openai.com/v1", "api_key": secret,
        "model_list": "", "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    config = ProviderConfig.objects.get(name="my-openai")
    assert config.base_url == ""  # the default: stored empty, follows the catalogue
    assert config.api_key == secret and secret not in config.api_key_encrypted
    assert config.source == ProviderConfig.SOURCE_ADMIN

    page = admin_client.get(f"{PROVIDERS}{config.pk}/change/")
    html = page.content.decode()
    assert secret not in html and "…1234" in html
    assert 'name="api_key"' in html and 'type="password"' in html
    assert admin_client.get(PROVIDERS).content.decode().count("…1234") == 1

    # Saving without typing a key keeps it.
    admin_client.post(f"{PROVIDERS}{config.pk}/change/", {
        "name": "my-openai", "provider_type": "openai", "base_url": "", "api_key": "",
        "model_list": "gpt-x", "enabled": "on"})
    config.refresh_from_db()
    assert config.api_key == secret and config.model_list == "gpt-x"
    # A new base URL without the key again is refused (it would send the stored key to the new host) …
    refused = admin_client.post(f"{PROVIDERS}{config.pk}/change/", {
        "name": "my-openai", "provider_type": "openai", "base_url": "https://proxy.example/v1", "api_key": "",
        "model_list": "gpt-x", "enabled": "on"})
    assert refused.status_code == 200 and "send the API key again" in refused.content.decode()
    config.refresh_from_db()
    assert config.base_url == ""
    # … and accepted with it; a custom base URL is kept as typed.
    admin_client.post(f"{PROVIDERS}{config.pk}/change/", {
        "name": "my-openai", "provider_type": "openai", "base_url": "https://proxy.example/v1", "api_key": secret,
        "model_list": "gpt-x", "enabled": "on"})
    config.refresh_from_db()
    assert config.api_key == secret and config.base_url == "https://proxy.example/v1"


def test_a_provider_that_needs_a_key_cannot_be_saved_without_one(admin_client):
    response = admin_client.post(f"{PROVIDERS}add/", {"name": "groq", "provider_type": "groq", "base_url": "",
                                                      "api_key": "", "model_list": "", "enabled": "on"})
    assert response.status_code == 200
    assert "Groq needs an API key." in response.content.decode()
    assert not ProviderConfig.objects.exists()


def test_test_connection_lists_the_upstreams_models(admin_client, make_provider, upstream):
    config = make_provider(base_url=upstream.base_url)
    page = admin_client.get(f"{PROVIDERS}{config.pk}/change/")
    assert "test-connection" in page.content.decode()
    response = admin_client.post(f"{PROVIDERS}{config.pk}/test-connection/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-ok="1"' in html and "<code>gpt-4o-mini</code>" in html
    assert "sk-upstream-secret" not in html
    assert upstream.requests[-1]["headers"]["authorization"] == "Bearer sk-upstream-secret"

    listed = admin_client.post(PROVIDERS, {"action": "test_connection_action", "_selected_action": [config.pk]},
                               follow=True)
    assert f"Connection to openai: OK — {len(fake_upstream.MODELS)} models" in listed.content.decode()


def test_test_connection_shows_the_upstreams_error(admin_client, make_provider):
    config = make_provider(base_url="http://127.0.0.1:9/v1", api_key="sk-wrong-key-123456")
    html = admin_client.post(f"{PROVIDERS}{config.pk}/test-connection/").content.decode()
    assert 'data-ok="0"' in html and "sk-wrong-key-123456" not in html

    def refuse(request):
        return httpx.Response(401, json={"error": {"message": "Incorrect API key provided: sk-wr***3456",
                                                   "type": "invalid_request_error", "code": "invalid_api_key"}})

    result = run_connection_test(config, transport=httpx.MockTransport(refuse))
    assert not result.ok and result.status == 401
    assert result.error == "HTTP 401: Incorrect API key provided: sk-wr***3456 [invalid_api_key]"
    assert "HTTP 401" in result.summary()


def test_environment_providers_are_listed_marked_and_read_only(admin_client, db):
    config = ProviderConfig(name="openai", provider_type="openai", source=ProviderConfig.SOURCE_ENV)
    config.set_api_key("sk-from-env-0123456789")
    config.save()
    listing = admin_client.get(PROVIDERS).content.decode()
    assert "environment" in listing and "…6789" in listing
    page = admin_client.get(f"{PROVIDERS}{config.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "comes from the environment" in html and "OPENAI_API_KEY" in html
    assert 'name="api_key"' not in html and "sk-from-env-0123456789" not in html
    assert admin_client.post(f"{PROVIDERS}{config.pk}/change/", {"name": "x", "provider_type": "groq"}).status_code \
        == 403
    assert admin_client.post(f"{PROVIDERS}{config.pk}/delete/", {"post": "yes"}).status_code == 403


def test_model_prices_and_aliases_are_editable(admin_client, db):
    response = admin_client.post("/admin/accounting/modelprice/add/", {
        "provider": "openai", "model_pattern": "gpt-9*", "input_per_million": "1.5", "output_per_million": "6",
        "cached_input_per_million": "", "reasoning_per_million": "", "valid_from_0": "2025-01-01",
        "valid_from_1": "00:00:00", "note": "test"})
    assert response.status_code == 302, response.content.decode()[:1500]
    assert ModelPrice.objects.get(model_pattern="gpt-9*").output_per_million == 6

    response = admin_client.post("/admin/providers/modelalias/add/", {
        "name": "fast", "targets": '[{"target": "openai/gpt-4o-mini", "weight": 2}]', "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:1500]
    assert ModelAlias.objects.get(name="fast").targets == [{"target": "openai/gpt-4o-mini", "weight": 2}]
    assert "openai/gpt-4o-mini ×2" in admin_client.get("/admin/providers/modelalias/").content.decode()


# -- usage (read-only) -------------------------------------------------------------------------------

@pytest.fixture
def usage_rows(acme, prices):
    from accounting.tenants.services import do_create_tenant

    tenant, key, _ = acme
    globex = do_create_tenant("globex")
    now = timezone.now()
    store_events(
        event(tenant, key, when=now, request_id="req-ok-1"),
        event(tenant, key, when=now, model="gpt-4o", request_id="req-ok-2"),
        event(tenant, key, when=now, status=502, prompt=0, completion=0, request_id="req-502"),
        event(tenant, key, when=now, status=429, prompt=0, completion=0, request_id="req-429"),
        event(globex, None, when=now, provider="groq", provider_type="groq", model="mystery-1",
              request_id="req-groq"),
    )
    return tenant, globex


def _ids(response):
    return {row.request_id for row in response.context_data["cl"].result_list}


def test_usage_events_are_read_only_with_filters_search_and_totals(admin_client, usage_rows):
    acme, globex = usage_rows
    url = "/admin/accounting/usageevent/"
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="usage-totals"' in html and "requests: <b>5</b>" in html
    assert "1 without a matching price" in html  # no price known for mystery-1
    assert admin_client.get(f"{url}add/").status_code == 403
    event_id = UsageEvent.objects.get(request_id="req-ok-1").pk
    assert admin_client.post(f"{url}{event_id}/change/", {}).status_code == 403
    assert admin_client.post(f"{url}{event_id}/delete/", {"post": "yes"}).status_code == 403

    assert _ids(admin_client.get(url, {"tenant__id__exact": globex.pk})) == {"req-groq"}
    assert _ids(admin_client.get(url, {"provider": "groq"})) == {"req-groq"}
    assert _ids(admin_client.get(url, {"model": "gpt-4o"})) == {"req-ok-2"}
    assert _ids(admin_client.get(url, {"status_class": "5xx"})) == {"req-502"}
    assert _ids(admin_client.get(url, {"status_class": "error"})) == {"req-502", "req-429"}
    assert _ids(admin_client.get(url, {"q": "req-429"})) == {"req-429"}
    assert _ids(admin_client.get(url, {"q": "req"})) == set()  # exact request id only
    filtered = admin_client.get(url, {"tenant__id__exact": acme.pk, "status_class": "ok"}).content.decode()
    assert "requests: <b>2</b>" in filtered and "total tokens: <b>30</b>" in filtered
    today = today_utc()
    dated = admin_client.get(url, {"created_at__year": today.year, "created_at__month": today.month})
    assert len(_ids(dated)) == 5


def test_daily_usage_is_read_only_with_filters_and_totals(admin_client, usage_rows):
    acme, _ = usage_rows
    url = "/admin/accounting/usagedaily/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "requests: <b>5</b>" in page.content.decode()
    assert admin_client.get(f"{url}add/").status_code == 403
    by_tenant = admin_client.get(url, {"tenant__id__exact": acme.pk})
    assert {(r.model, r.requests, r.errors) for r in by_tenant.context_data["cl"].result_list} == {
        ("gpt-4o-mini", 3, 2), ("gpt-4o", 1, 0)}
    assert "errors: <b>2</b>" in by_tenant.content.decode()
    assert by_tenant.context_data["cl"].result_count == 2
    assert admin_client.get(url, {"errors": "yes"}).context_data["cl"].result_count == 1
    assert admin_client.get(url, {"provider": "groq"}).context_data["cl"].result_count == 1


def test_admin_pages_link_to_the_dashboard(admin_client, db):
    html = admin_client.get("/admin/").content.decode()
    assert 'href="/dashboard/"' in html and "GoModel administration" in html
