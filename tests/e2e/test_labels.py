"""Labels and end users (issue #23) through the official SDKs: the key's labels merged with the request's
(`x-gomodel-labels`, the body's `metadata`), the end user from each source, both on the usage event and the
stored row; out of bounds → 400 with nothing forwarded or recorded; `/v1/usage?group_by=label|user` and its
filters equal to the stored events to the digit; no label or user in /metrics."""

import hashlib
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.conf import settings

from accounting.models import UsageEvent
from accounting.prices.defaults import load_default_prices
from accounting.tenants.services import do_create_api_key, do_create_tenant
from accounting.usage.drain import drain

pytestmark = [pytest.mark.e2e]
HI = [{"role": "user", "content": "Hi"}]
MASTER = {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}


@pytest.fixture
def labelled(transactional_db):
    """(key row, plaintext) of a key labelled team:core, env:prod."""
    load_default_prices()
    tenant = do_create_tenant("acme")
    return do_create_api_key(tenant, name="ci", labels={"team": "core", "env": "prod"})


@pytest.fixture
def client(gateway, provider, labelled):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=labelled[1], max_retries=0)


def one_event(usage_events, request_id):
    [event] = usage_events(request_id)
    return event


def test_key_header_and_metadata_labels_merge(client, usage_events, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, metadata={"team": "search", "run": "7"}, user="u-1",
        extra_headers={"x-gomodel-labels": "feature:autocomplete, run:8"})
    assert raw.status_code == 200
    event = one_event(usage_events, raw.headers["x-request-id"])
    # the key's, then the body's metadata, then the header: a later source wins a name
    assert event["labels"] == {"team": "search", "env": "prod", "run": "8", "feature": "autocomplete"}
    assert event["user"] == "u-1"
    [sent] = upstream.chat_requests()
    assert "x-gomodel-labels" not in sent["headers"]  # the gateway's own header stays with the gateway
    assert drain().inserted == 1
    row = UsageEvent.objects.get(request_id=raw.headers["x-request-id"])
    assert (row.labels, row.user) == (event["labels"], "u-1")


def test_the_keys_labels_alone_and_no_user(client, usage_events):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, stream=True)
    raw.parse().close()
    event = one_event(usage_events, raw.headers["x-request-id"])
    assert (event["labels"], event["user"]) == ({"team": "core", "env": "prod"}, "")


@pytest.mark.parametrize("kwargs, param, words", [
    ({"extra_headers": {"x-gomodel-labels": ",".join(f"l{i}:v" for i in range(17))}}, "x-gomodel-labels",
     "more than 16"),
    # 15 more names with the key's two: 17 in all
    ({"extra_headers": {"x-gomodel-labels": ",".join(f"l{i}:v" for i in range(15))}}, "x-gomodel-labels",
     "17"),
    ({"metadata": {"team": "x" * 65}}, "metadata", "label 'team'"),
    ({"metadata": {"bad\u0007name": "v"}}, "metadata", "not printable"),
    ({"extra_headers": {"x-gomodel-labels": "team"}}, "x-gomodel-labels", "name:value"),
    ({"extra_headers": {"x-gomodel-labels": "tea m:" + "y" * 65}}, "x-gomodel-labels", "label 'tea m'"),
    ({"user": "u" * 65}, "user", "longer than 64"),
    ({"extra_headers": {"x-gomodel-user": "z" * 65}}, "x-gomodel-user", "longer than 64"),
    ({"user": "line\nbreak"}, "user", "not printable"),
])
def test_out_of_bounds_is_a_400_and_changes_nothing(client, usage_events, upstream, kwargs, param, words):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, **kwargs)
    error = refused.value.body
    assert refused.value.status_code == 400
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert error["code"] in ("invalid_labels", "invalid_user") and words in error["message"], error
    assert upstream.chat_requests() == []
    assert usage_events(None, expect=0, timeout=0.2) == []


def test_the_end_user_from_each_source(gateway, client, usage_events, labelled):
    ids = {}
    ids["chat"] = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, user="chat-user").headers["x-request-id"]
    ids["embeddings"] = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="Hi", user="emb-user").headers["x-request-id"]
    ids["responses"] = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Hi", user="resp-user").headers["x-request-id"]
    ids["header"] = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, user="body-user",
        extra_headers={"x-gomodel-user": "header-user"}).headers["x-request-id"]
    messages = anthropic.Anthropic(base_url=gateway, api_key=labelled[1], max_retries=0)
    ids["messages"] = messages.messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=50, messages=HI, metadata={"user_id": "msg-user"}).headers["x-request-id"]
    users = {name: one_event(usage_events, request_id)["user"] for name, request_id in ids.items()}
    assert users == {"chat": "chat-user", "embeddings": "emb-user", "responses": "resp-user",
                     "header": "header-user", "messages": "msg-user"}


def test_labels_on_messages_and_responses(gateway, client, usage_events, labelled):
    messages = anthropic.Anthropic(base_url=gateway, api_key=labelled[1], max_retries=0)
    raw = messages.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, messages=HI,
                                                     extra_headers={"x-gomodel-labels": "feature:chat"})
    assert one_event(usage_events, raw.headers["x-request-id"])["labels"] == {
        "team": "core", "env": "prod", "feature": "chat"}
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input="Hi", metadata={"env": "staging"},
                                                    extra_headers={"x-gomodel-labels": "feature:agent"})
    assert one_event(usage_events, raw.headers["x-request-id"])["labels"] == {
        "team": "core", "env": "staging", "feature": "agent"}
    with pytest.raises(anthropic.BadRequestError) as refused:  # Anthropic's envelope on its route
        messages.messages.create(model="gpt-4o-mini", max_tokens=50, messages=HI,
                                 extra_headers={"x-gomodel-user": "u" * 65})
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "longer than 64" in refused.value.body["error"]["message"]


def test_a_long_anthropic_user_id_is_recorded_as_its_digest(gateway, usage_events, labelled, provider):
    """Claude Code's metadata.user_id is a ~150-character JSON object (Anthropic takes up to 256): never a 400."""
    claude_code = '{"device_id":"' + "a" * 64 + '","account_uuid":"","session_id":"' + "d542c0d6" * 4 + '"}'
    messages = anthropic.Anthropic(base_url=gateway, api_key=labelled[1], max_retries=0)
    raw = messages.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, messages=HI,
                                                     metadata={"user_id": claude_code})
    assert one_event(usage_events, raw.headers["x-request-id"])["user"] == hashlib.sha256(
        claude_code.encode()).hexdigest()


def usage(gateway, key, **params):
    response = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def expected(rows):
    costs = [r.cost for r in rows if r.cost is not None]
    return {"requests": len(rows), "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "total_tokens": sum(r.total_tokens for r in rows),
            "cost_usd": format(sum(costs, Decimal(0)).normalize(), "f") if costs else None}


def picked(row):
    return {field: row[field] for field in ("requests", "prompt_tokens", "total_tokens", "cost_usd")}


def test_usage_by_label_and_user_equals_the_events(gateway, client, labelled, usage_events):
    calls = [({"x-gomodel-labels": "feature:search"}, "alice"), ({"x-gomodel-labels": "feature:search"}, "bob"),
             ({"x-gomodel-labels": "feature:chat,team:web"}, "alice"), ({}, None)]
    for headers, user in calls[:2]:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers=headers,
                                       **({"user": user} if user else {}))
    usage_events(None, expect=2)
    assert drain().inserted == 2
    for headers, user in calls[2:]:  # these two stay undrained: counted from the stream
        client.embeddings.create(model="text-embedding-3-small", input="Hi", extra_headers=headers,
                                 **({"user": user} if user else {}))
    usage_events(None, expect=2)
    key = labelled[1]

    by_label = usage(gateway, key, group_by="label")
    plain = usage(gateway, key)
    assert by_label["group_by"] == "label" and by_label["totals"] == plain["totals"]
    rows = {r["label"]: r for r in by_label["data"]}
    assert set(rows) == {"team:core", "env:prod", "feature:search", "feature:chat", "team:web"}
    assert rows["env:prod"]["requests"] == 4 and rows["team:core"]["requests"] == 3
    assert (rows["feature:search"]["requests"], rows["feature:chat"]["requests"]) == (2, 1)

    assert drain().inserted == 2  # now every event is stored: each row equals its events to the digit
    stored = list(UsageEvent.objects.all())
    by_label = usage(gateway, key, group_by="label")
    for row in by_label["data"]:
        name, value = row["label"].split(":")
        assert picked(row) == expected([e for e in stored if e.labels.get(name) == value]), row
    assert picked(by_label["totals"]) == expected(stored)

    by_user = usage(gateway, key, group_by="user")
    users = {r["user"]: r for r in by_user["data"]}
    assert set(users) == {"alice", "bob", None}
    for user, row in users.items():
        assert picked(row) == expected([e for e in stored if e.user == (user or "")]), row
    assert picked(by_user["totals"]) == expected(stored)

    only = usage(gateway, key, label="feature:search")
    assert only["filters"] == {"label": "feature:search"}
    assert picked(only["totals"]) == expected([e for e in stored if e.labels.get("feature") == "search"])
    assert {(r["model"], r["requests"]) for r in only["data"]} == {("gpt-4o-mini", 2)}  # the plain rows' shape
    alice = usage(gateway, key, user="alice", group_by="label")
    assert picked(alice["totals"]) == expected([e for e in stored if e.user == "alice"])
    assert {r["label"] for r in alice["data"]} == {"team:core", "team:web", "env:prod", "feature:search",
                                                   "feature:chat"}

    # the management API's per-tenant usage answers the same
    api = httpx.get(f"{gateway}/api/v1/tenants/acme/usage/", params={"group_by": "user"}, headers=MASTER,
                    timeout=10)
    assert api.status_code == 200, api.text
    assert api.json()["data"] == by_user["data"]

    for params in ({"group_by": "team"}, {"label": "nocolon"}, {"label": "a:1,b:2"}, {"user": "u" * 65}):
        bad = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}, params=params,
                        timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == next(iter(params)), bad.text


def test_metrics_carry_no_labels_or_users(gateway, client, settings):
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, user="secret-user-7",
                                   extra_headers={"x-gomodel-labels": "feature:secret-label-7"})
    text = httpx.get(f"{gateway}/metrics", headers=MASTER, timeout=10).text
    assert "secret-user-7" not in text and "secret-label-7" not in text and "feature" not in text
