"""/v1/files through the openai SDK against the fake OpenAI-format upstream: a round trip (upload, list,
retrieve, content, delete) with the provider's key upstream, and tenant isolation: another tenant's file is a
404 on retrieve, content and delete (nothing reaches the provider) and never shows up in its list."""

import openai
import pytest

pytestmark = [pytest.mark.e2e]

JSONL = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n' + bytes(range(256))


@pytest.fixture
def two_tenants(transactional_db):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    keys = []
    for slug in ("alpha", "beta"):
        tenant = do_create_tenant(slug, slug.title())
        keys.append(do_create_api_key(tenant, name="files")[1])
    return keys


def sdk(gateway, key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)


def test_a_file_round_trip(gateway, provider, upstream, tenant_key):
    client = sdk(gateway, tenant_key[2])
    created = client.files.create(file=("batch.jsonl", JSONL), purpose="batch")
    assert (created.filename, created.bytes, created.purpose) == ("batch.jsonl", len(JSONL), "batch")
    [upload] = [r for r in upstream.requests if r["method"] == "POST"]
    assert upload["headers"]["authorization"] == "Bearer sk-upstream-secret"
    assert upload["body"] == {"file": ("batch.jsonl", JSONL), "purpose": "batch"}

    assert [f.id for f in client.files.list()] == [created.id]
    assert [f.id for f in client.files.list(purpose="fine-tune")] == []
    assert client.files.retrieve(created.id).status == "processed"
    assert client.files.content(created.id).content == JSONL
    assert client.files.delete(created.id).deleted is True
    assert list(client.files.list()) == []
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_the_list_pages_newest_first(gateway, provider, upstream, tenant_key):
    client = sdk(gateway, tenant_key[2])
    ids = [client.files.create(file=(f"{n}.jsonl", JSONL), purpose="batch").id for n in range(3)]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[:0:-1] and first.has_more
    assert [f.id for f in client.files.list()] == ids[::-1]  # the SDK follows `after` through every page
    assert [f.id for f in client.files.list(order="asc")] == ids


def test_another_tenants_file_is_a_404_and_never_listed(gateway, provider, upstream, two_tenants):
    alpha, beta = (sdk(gateway, key) for key in two_tenants)
    mine = alpha.files.create(file=("alpha.jsonl", JSONL), purpose="batch")
    theirs = beta.files.create(file=("beta.jsonl", JSONL), purpose="batch")
    assert [f.id for f in alpha.files.list()] == [mine.id]
    assert [f.id for f in beta.files.list()] == [theirs.id]
    before = len(upstream.requests)
    for call in (beta.files.retrieve, beta.files.content, beta.files.delete):
        with pytest.raises(openai.NotFoundError) as raised:
            call(mine.id)
        assert raised.value.body["code"] == "file_not_found"
    assert len(upstream.requests) == before  # refused by the gateway: the provider was never asked
    assert alpha.files.content(mine.id).content == JSONL  # still there for its owner


def test_a_key_not_allowed_the_provider_cannot_upload(gateway, provider, upstream, tenant_key):
    key = tenant_key[1]
    key.allowed_models = ["groq/*"]
    key.save()
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, tenant_key[2]).files.create(file=("a.jsonl", JSONL), purpose="batch")
    assert [r for r in upstream.requests if "/files" in r["path"]] == []


def test_an_upload_without_a_file_is_a_400(gateway, provider, upstream, tenant_key):
    import httpx

    answer = httpx.post(f"{gateway}/v1/files", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                        data={"purpose": "batch"}, files={"other": ("a.txt", b"x")})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "missing_required"
    assert upstream.requests == []
