"""The response cache's policy (tenant and key) through the management API and create_api_key."""

import io

import pytest
from django.core.management import CommandError, call_command

from accounting.models import ApiKey, AuditEntry


def test_tenant_and_key_cache_policy_are_set_validated_and_audited(api, make_tenant):
    tenant = make_tenant("acme")
    response = api.patch(f"/api/v1/tenants/{tenant.pk}/", {"cache_mode": "exact", "cache_ttl_seconds": 600,
                                                           "cache_sampled": True}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["cache_mode"], response.json()["cache_ttl_seconds"]) == ("exact", 600)
    entry = AuditEntry.objects.filter(object_type="tenant", action="update").latest("id")
    assert entry.changes["cache_mode"] == ["off", "exact"]
    created = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "k", "cache_mode": "off",
                                                              "cache_max_entry_bytes": 4096}, format="json")
    assert created.status_code == 201, created.content
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert (key.cache_mode, key.cache_max_entry_bytes, key.cache_sampled) == ("off", 4096, None)
    inherit = api.patch(f"/api/v1/keys/{key.pk}/", {"cache_mode": ""}, format="json")
    assert inherit.status_code == 200 and inherit.json()["cache_mode"] == ""
    semantic = api.patch(f"/api/v1/keys/{key.pk}/", {"cache_mode": "semantic", "cache_similarity": 0.9}, format="json")
    assert semantic.status_code == 200, semantic.content
    assert (semantic.json()["cache_mode"], semantic.json()["cache_similarity"]) == ("semantic", 0.9)


@pytest.mark.parametrize("payload", [{"cache_mode": "fuzzy"}, {"cache_mode": "on"}, {"cache_ttl_seconds": 0},
                                     {"cache_similarity": 0.2}, {"cache_similarity": 1.5}])
def test_cache_policy_validation(api, make_tenant, payload):
    tenant = make_tenant("acme")
    response = api.patch(f"/api/v1/tenants/{tenant.pk}/", payload, format="json")
    assert response.status_code == 400 and next(iter(payload)) in response.json(), response.content


@pytest.mark.django_db
def test_create_api_key_cache_flag(make_tenant):
    make_tenant("acme")
    call_command("create_api_key", "acme", "--cache", "exact", "--cache-ttl", "120", stdout=io.StringIO(),
                 stderr=io.StringIO())
    key = ApiKey.objects.get()
    assert (key.cache_mode, key.cache_ttl_seconds) == ("exact", 120)
    call_command("create_api_key", "acme", "--cache", "semantic", stdout=io.StringIO(), stderr=io.StringIO())
    assert ApiKey.objects.latest("id").cache_mode == "semantic"
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_api_key", "acme", "--cache", "sometimes", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_the_policy_a_key_gets(make_tenant, settings):
    from accounting.tenants.services import do_create_api_key
    from gomodel.gateway.response_cache import CachePolicy, policy_of

    def lookup_key(key_hash):  # what auth.lookup_key puts on the Principal
        return type("P", (), {"cache": policy_of(ApiKey.objects.select_related("tenant").get(key_hash=key_hash))})

    tenant = make_tenant("acme")
    key, _ = do_create_api_key(tenant)
    assert lookup_key(key.key_hash).cache is None  # default: off
    tenant.cache_mode, tenant.cache_ttl_seconds = "exact", 900
    tenant.save()
    default = settings.SEMANTIC_CACHE_THRESHOLD
    assert lookup_key(key.key_hash).cache == CachePolicy("exact", 900, settings.RESPONSE_CACHE_MAX_ENTRY_BYTES, False,
                                                         default)
    key.cache_ttl_seconds, key.cache_sampled = 30, True
    key.save()
    assert lookup_key(key.key_hash).cache == CachePolicy("exact", 30, settings.RESPONSE_CACHE_MAX_ENTRY_BYTES, True,
                                                         default)
    tenant.cache_similarity, key.cache_mode = 0.9, "semantic"  # a key's mode and its tenant's threshold
    tenant.save()
    key.save()
    assert lookup_key(key.key_hash).cache == CachePolicy("semantic", 30, settings.RESPONSE_CACHE_MAX_ENTRY_BYTES,
                                                         True, 0.9)
    key.cache_mode = "off"
    key.save()
    assert lookup_key(key.key_hash).cache is None
