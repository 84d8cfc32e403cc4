"""The semantic cache through the openai SDK against the fake upstream, whose /embeddings answers bag-of-words
vectors for `bag-*` models (tests/fake_upstream.py: a paraphrase maps to the same vector): a paraphrase is a
semantic hit (header, usage event cache=semantic, cost 0, saving as an exact hit's, each lookup's embedding billed
to the tenant as `cache.embed`); other tools, another model or another tenant never get it."""

from decimal import Decimal

import httpx
import openai
import pytest

from tests.e2e import test_guarantee_matrix as matrix
from tests.e2e.test_guarantee_matrix import CHAT_JSON, upstream_calls

pytestmark = [pytest.mark.e2e]
targets, make_key = matrix.targets, matrix.make_key

QUESTION = "What is the capital of France?"
PARAPHRASE = "Tell me, what's the capital of France please"
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture(autouse=True)
def semantic_settings(settings, tmp_path_factory):
    settings.SEMANTIC_CACHE_EMBED_MODEL = "groq/bag-embed"
    # The session gateway opens its store once: one file for the session (each test's cache prefix scopes it).
    settings.SEMANTIC_CACHE_PATH = tmp_path_factory.getbasetemp() / "semantic-cache.sqlite3"
    settings.SEMANTIC_CACHE_STORE = "sqlite-vec"


def client(gateway, key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)


def ask(oai, text, model="groq/gpt-4o-mini", **extra):
    raw = oai.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}],
                                                        **extra)
    return raw.headers["x-gomodel-cache"], raw.headers["x-request-id"], raw.parse()


def drained(*request_ids):
    from accounting.models import UsageEvent
    from accounting.usage.drain import drain

    drain()
    return [UsageEvent.objects.get(request_id=request_id) for request_id in request_ids]


def test_a_paraphrase_is_a_semantic_hit_billed_as_a_hit(gateway, targets, make_key, settings):
    oai = client(gateway, make_key(cache_mode="semantic"))
    chats = upstream_calls(targets, CHAT_JSON)
    h1, miss_id, first = ask(oai, QUESTION)
    h2, hit_id, second = ask(oai, PARAPHRASE)
    assert (h1, h2) == ("miss", "hit-semantic")
    assert second.choices[0].message.content == first.choices[0].message.content
    chat_posts = [r for r in targets["groq"].requests if r["path"].endswith("/chat/completions")]
    assert len(chat_posts) == 1 and upstream_calls(targets, CHAT_JSON) == chats + 3  # one chat, two embeddings
    miss, hit, embed_miss, embed_hit = drained(miss_id, hit_id, miss_id + ".e", hit_id + ".e")
    assert (hit.cache, hit.cost, hit.cost_source) == ("semantic", Decimal(0), "cache")
    assert hit.cost_saved_usd == miss.cost > 0 and miss.cache == ""
    for embed in (embed_miss, embed_hit):  # every lookup's embedding, billed to the caller's tenant and key
        assert (embed.endpoint, embed.model, embed.status) == ("cache.embed", "bag-embed", 200)
        assert embed.tenant_id == hit.tenant_id and embed.api_key_id == hit.api_key_id
        assert embed.cost > 0 and embed.cache == ""
    embeddings = len([r for r in targets["groq"].requests if r["path"].endswith("/embeddings")])
    assert ask(oai, QUESTION)[0] == "hit-exact"  # the stored request again: the exact cache answers first…
    assert len([r for r in targets["groq"].requests if r["path"].endswith("/embeddings")]) == embeddings  # …alone
    settings.METRICS_PUBLIC = True
    metrics = httpx.get(f"{gateway}/metrics", timeout=20).text
    assert 'gomodel_semantic_cache_lookups_total{endpoint="/v1/chat/completions",result="hit"}' in metrics


def test_a_stream_paraphrase_is_a_semantic_hit(gateway, targets, make_key):
    oai = client(gateway, make_key(cache_mode="semantic"))
    texts, headers = [], []
    for text in (QUESTION, PARAPHRASE):
        raw = oai.chat.completions.with_raw_response.create(
            model="groq/gpt-4o-mini", stream=True, messages=[{"role": "user", "content": text}])
        headers.append(raw.headers["x-gomodel-cache"])
        texts.append("".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices))
    assert headers == ["miss", "hit-semantic"] and texts[0] == texts[1] != ""


def test_another_question_other_tools_or_another_model_miss(gateway, targets, make_key):
    oai = client(gateway, make_key(cache_mode="semantic"))
    assert ask(oai, QUESTION)[0] == "miss"
    assert ask(oai, "What is the capital of Spain?")[0] == "miss"  # similarity 0.5
    assert ask(oai, PARAPHRASE, tools=TOOLS)[0] == "miss"  # other tools: another scope
    assert ask(oai, PARAPHRASE, model="groq/tool-model")[0] == "miss"  # another model
    assert ask(oai, PARAPHRASE, model="openai/gpt-4o-mini")[0] == "miss"  # another provider
    assert ask(oai, PARAPHRASE, max_tokens=5)[0] == "miss"  # another parameter
    assert ask(oai, PARAPHRASE)[0] == "hit-semantic"  # and the same request's paraphrase still hits


def test_a_tenant_never_gets_another_tenants_semantic_hit(gateway, targets, make_key):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    oai_a = client(gateway, make_key(cache_mode="semantic"))
    assert ask(oai_a, QUESTION)[0] == "miss"
    _, key_b = do_create_api_key(do_create_tenant("other"), name="b", cache_mode="semantic")
    oai_b = client(gateway, key_b)
    assert ask(oai_b, PARAPHRASE)[0] == "miss"
    assert ask(oai_b, QUESTION)[0] == "hit-semantic"  # B's own paraphrase of its own answer…
    assert ask(oai_a, PARAPHRASE)[0] == "hit-semantic"  # … and A's of A's


def test_the_threshold_is_per_policy(gateway, targets, make_key):
    oai = client(gateway, make_key(cache_mode="semantic", cache_similarity=0.5))
    assert ask(oai, QUESTION)[0] == "miss"
    assert ask(oai, "What is the capital of Spain?")[0] == "hit-semantic"  # 0.5 ≥ this key's 0.5


def test_an_exact_key_never_embeds(gateway, targets, make_key):
    oai = client(gateway, make_key(cache_mode="exact"))
    assert [ask(oai, text)[0] for text in (QUESTION, PARAPHRASE)] == ["miss", "miss"]
    assert not [r for r in targets["groq"].requests if r["path"].endswith("/embeddings")]


def test_a_failed_answer_is_never_stored_semantically(gateway, targets, make_key):
    oai = client(gateway, make_key(cache_mode="semantic"))
    for text in (QUESTION, PARAPHRASE):
        with pytest.raises(openai.APIStatusError) as failed:
            oai.chat.completions.create(model="groq/fail-500", messages=[{"role": "user", "content": text}])
        assert failed.value.response.headers["x-gomodel-cache"] == "miss"


def test_responses_and_messages_paraphrases_hit(gateway, targets, make_key):
    import anthropic

    key = make_key(cache_mode="semantic")
    oai = client(gateway, key)
    headers = [oai.responses.with_raw_response.create(model="groq/gpt-4o-mini", input=text, store=False)
               .headers["x-gomodel-cache"] for text in (QUESTION, PARAPHRASE)]
    assert headers == ["miss", "hit-semantic"]
    claude = anthropic.Anthropic(base_url=gateway, api_key=key, max_retries=0)
    headers = [claude.messages.with_raw_response.create(
        model="anthropic/claude-sonnet-4-5", max_tokens=64, system="Answer briefly.",
        messages=[{"role": "user", "content": text}]).headers["x-gomodel-cache"] for text in (QUESTION, PARAPHRASE)]
    assert headers == ["miss", "hit-semantic"]


def test_no_cache_skips_the_lookup_but_stores(gateway, targets, make_key):
    key = make_key(cache_mode="semantic")
    body = {"model": "groq/gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}]}
    first = httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=20,
                       headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-cache"})
    assert first.headers["x-gomodel-cache"] == "bypass"
    assert ask(client(gateway, key), PARAPHRASE)[0] == "hit-semantic"


def test_the_embedding_model_unset_leaves_the_exact_cache(gateway, targets, make_key, settings):
    settings.SEMANTIC_CACHE_EMBED_MODEL = ""
    oai = client(gateway, make_key(cache_mode="semantic"))
    assert [ask(oai, text)[0] for text in (QUESTION, PARAPHRASE, PARAPHRASE)] == ["miss", "miss", "hit-exact"]


def test_the_embedding_counts_against_the_budget(gateway, targets, make_key, usage_events):
    oai = client(gateway, make_key(cache_mode="semantic", budget_usd=Decimal("10"), budget_period="daily"))
    _, request_id, _ = ask(oai, QUESTION)
    [embed] = usage_events(request_id + ".e")
    assert embed["endpoint"] == "cache.embed" and Decimal(embed["cost"]) > 0 and embed["budget_keys"]


def test_a_slow_embedder_is_a_miss_within_the_timeout(gateway, targets, make_key, settings, usage_events):
    import time

    settings.SEMANTIC_CACHE_EMBED_MODEL, settings.SEMANTIC_CACHE_TIMEOUT = "groq/slow", 0.3
    oai = client(gateway, make_key(cache_mode="semantic"))
    started = time.monotonic()
    header, request_id, answer = ask(oai, QUESTION)
    assert header == "miss" and answer.choices[0].message.content and time.monotonic() - started < 3
    # Cut before the upstream answered: no attempt completed, so no event (as for any call cancelled then).
    assert usage_events(request_id + ".e", expect=0, timeout=0.3) == []


@pytest.fixture
def pgvector_runtime(gateway, pg_server):
    """The session gateway's semantic cache on a pgvector store for one test (then back to its own)."""
    from gomodel.gateway.runtime import _runtimes
    from gomodel.gateway.semantic_cache.lookup import SemanticCache
    from gomodel.gateway.semantic_cache.pg_store import PgVectorStore

    [runtime] = [runtime for loop, runtime in list(_runtimes.items()) if loop.is_running()]
    previous, runtime.semantic = runtime.semantic, SemanticCache()
    runtime.semantic.store = store = PgVectorStore(pg_server.get_uri())
    yield store
    runtime.semantic = previous
    store.close()


def test_a_paraphrase_hits_through_pgvector(gateway, targets, make_key, pgvector_runtime):
    from gomodel.gateway.semantic_cache.pg_store import TABLE

    oai = client(gateway, make_key(cache_mode="semantic"))
    assert ask(oai, QUESTION)[0] == "miss"
    deadline = __import__("time").monotonic() + 3  # stored in a thread just after the answer
    while not pgvector_runtime.db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]:
        assert __import__("time").monotonic() < deadline
    assert ask(oai, PARAPHRASE)[0] == "hit-semantic"


def test_a_spent_budget_pays_no_embedding(gateway, targets, make_key, usage_events):
    key = make_key(cache_mode="semantic", budget_usd=Decimal("0"), budget_period="daily")
    answer = httpx.post(f"{gateway}/v1/chat/completions", timeout=20, headers={"Authorization": f"Bearer {key}"},
                        json={"model": "groq/gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}]})
    assert answer.status_code == 429 and answer.json()["error"]["code"] == "budget_exceeded"
    assert not [r for r in targets["groq"].requests if r["path"].endswith("/embeddings")]
    assert usage_events(answer.headers["x-request-id"] + ".e", expect=0, timeout=0.3) == []
