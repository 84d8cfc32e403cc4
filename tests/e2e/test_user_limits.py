"""Rate limits of each end user and per label (issue #23's stretch): a tenant's `user_rpm_limit` /
`user_tpm_limit` count every end user a request names (x-gomodel-user, `user`, Anthropic's metadata.user_id)
apart, and its `label_limits` every request carrying a label, across the tenant's keys; a request naming no
user (carrying no such label) is not counted there."""

import httpx
import orjson
import pytest
from django.conf import settings

from tests.e2e.test_errors import assert_envelope

pytestmark = [pytest.mark.e2e]
HELLO = [{"role": "user", "content": "Hello"}]
MASTER = {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}


@pytest.fixture
def keys(transactional_db):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("acme", user_rpm_limit=2)
    return [do_create_api_key(tenant, name=f"k{i}")[1] for i in range(2)]


def post(gateway, key, user=None, header=None):
    body = {"model": "gpt-4o-mini", "messages": HELLO, **({"user": user} if user else {})}
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    if header:
        headers["x-gomodel-user"] = header
    return httpx.post(f"{gateway}/v1/chat/completions", content=orjson.dumps(body), headers=headers, timeout=10)


def test_each_end_user_has_its_own_allowance_across_the_tenants_keys(gateway, provider, upstream, keys,
                                                                       usage_events):
    first, second = keys
    assert post(gateway, first, user="alice").status_code == 200
    answer = post(gateway, second, header="alice")  # the other key, the header: the same end user
    assert answer.status_code == 200 and answer.headers["x-ratelimit-remaining-requests"] == "0"
    usage_events(None, expect=2)
    upstream.requests.clear()
    refused = post(gateway, first, user="alice")
    error = assert_envelope(refused, 429, "rate_limit_error", code="rate_limit_exceeded")
    assert "end user's requests-per-minute limit (2)" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert upstream.chat_requests() == [] and len(usage_events(None, expect=2)) == 2  # refused: nothing recorded
    assert post(gateway, first, user="bob").status_code == 200  # another end user: its own allowance
    for _ in range(3):  # no end user named: no end-user limit
        assert post(gateway, second).status_code == 200


def test_the_limits_are_set_through_the_management_api(gateway, keys):
    url = f"{gateway}/api/v1/tenants/acme/"
    master = MASTER
    response = httpx.patch(url, json={"user_rpm_limit": 5, "user_tpm_limit": 1000}, headers=master, timeout=10)
    assert response.status_code == 200, response.text
    assert (response.json()["user_rpm_limit"], response.json()["user_tpm_limit"]) == (5, 1000)
    assert httpx.patch(url, json={"user_rpm_limit": 0}, headers=master, timeout=10).status_code == 400


def test_a_label_has_its_own_allowance_across_the_tenants_keys(gateway, provider, upstream, transactional_db,
                                                                 usage_events):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("globex", label_limits={"team:search": {"rpm": 2}})
    labelled = do_create_api_key(tenant, name="search", labels={"team": "search"})[1]
    plain = do_create_api_key(tenant, name="plain")[1]
    assert post(gateway, labelled).status_code == 200  # the key's label
    headers = {"Authorization": f"Bearer {plain}", "x-gomodel-labels": "team:search"}
    body = {"model": "gpt-4o-mini", "messages": HELLO}
    assert httpx.post(f"{gateway}/v1/chat/completions", json=body, headers=headers, timeout=10).status_code == 200
    usage_events(None, expect=2)
    upstream.requests.clear()
    refused = post(gateway, labelled)
    error = assert_envelope(refused, 429, "rate_limit_error", code="rate_limit_exceeded")
    assert "label team:search's requests-per-minute limit (2)" in error["message"]
    assert upstream.chat_requests() == []
    other = {**headers, "x-gomodel-labels": "team:web"}  # another value of the label: not limited
    assert httpx.post(f"{gateway}/v1/chat/completions", json=body, headers=other, timeout=10).status_code == 200
    assert post(gateway, plain).status_code == 200  # no label: not limited
    metrics = httpx.get(f"{gateway}/metrics", headers=MASTER, timeout=10).text
    assert 'scope="label"' in metrics and "team:search" not in metrics  # the kind, never the label itself


@pytest.mark.parametrize("limits", [{"team": {"rpm": 1}}, {"team:a": {"rpm": 0}}, {"team:a": {"rps": 1}},
                                    {"team:a": {}}, {"a:1,b:2": {"rpm": 1}}, ["team:a"]])
def test_bad_label_limits_are_refused_by_the_api(gateway, keys, limits):
    response = httpx.patch(f"{gateway}/api/v1/tenants/acme/", json={"label_limits": limits}, timeout=10,
                           headers=MASTER)
    assert response.status_code == 400 and "label_limits" in response.json(), response.text
