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


# -- a file's content is relayed as it arrives ------------------------------------------------------------------
MIB = 1024 * 1024


def provider_holds(upstream, tenant_key, size: int) -> tuple[str, bytes]:
    """A file of `size` random bytes at the fake provider, owned by the key's tenant (put there directly: an
    upload that large is over the gateway's BODY_SIZE_LIMIT)."""
    import random

    from accounting.provider_files.services import do_record_file

    content = random.Random(size).randbytes(size)  # not a repeating pattern: a piece out of place would show
    file_id = f"file-big{len(upstream.files):04d}"
    upstream.files[file_id] = {"id": file_id, "object": "file", "bytes": size, "created_at": 0,
                               "filename": "big.jsonl", "purpose": "batch", "status": "processed",
                               "_content": content}
    do_record_file(tenant_key[0].id, tenant_key[1].id, "openai", upstream.public(upstream.files[file_id]))
    return file_id, content


def content_url(gateway, file_id):
    return f"{gateway}/v1/files/{file_id}/content"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_large_file_arrives_whole_in_pieces(gateway, provider, upstream, tenant_key, declared):
    import httpx

    upstream.content_chunk, upstream.content_declared = 64 * 1024, declared
    file_id, content = provider_holds(upstream, tenant_key, 4 * MIB)
    assert sdk(gateway, tenant_key[2]).files.content(file_id).content == content
    answer = httpx.get(content_url(gateway, file_id), headers={"Authorization": f"Bearer {tenant_key[2]}"})
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers.get("content-length") == (str(len(content)) if declared else None)
    assert answer.content == content


def test_memory_does_not_grow_with_the_file(gateway, provider, upstream, tenant_key):
    """The gateway, the fake and this client share the process: the peak of what was allocated while 16 MiB
    went through (the client dropping each piece) stays a small fraction of it."""
    import tracemalloc

    import httpx

    upstream.content_chunk = 64 * 1024
    file_id, content = provider_holds(upstream, tenant_key, 16 * MIB)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with httpx.stream("GET", content_url(gateway, file_id),
                          headers={"Authorization": f"Bearer {tenant_key[2]}"}) as answer:
            received = sum(len(piece) for piece in answer.iter_raw())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert received == len(content)
    assert peak < 4 * MIB, peak


def test_the_clients_hang_up_closes_the_upstream(gateway, provider, upstream, tenant_key):
    import httpx

    upstream.content_chunk = 64 * 1024
    file_id, content = provider_holds(upstream, tenant_key, 48 * MIB)  # more than every buffer between holds
    with httpx.stream("GET", content_url(gateway, file_id),
                      headers={"Authorization": f"Bearer {tenant_key[2]}"}) as answer:
        assert answer.status_code == 200
        got = 0
        for piece in answer.iter_raw():
            got += len(piece)
            if got >= MIB:
                break
    assert upstream.content_abandoned.wait(10)  # the gateway closed its upstream connection
    assert upstream.content_sent < len(content)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_upstream_cut_mid_way_is_a_cut_body(gateway, provider, upstream, tenant_key, declared):
    import httpx

    upstream.content_chunk, upstream.content_declared, upstream.content_cut_at = 64 * 1024, declared, MIB
    file_id, _ = provider_holds(upstream, tenant_key, 4 * MIB)
    with pytest.raises(httpx.RemoteProtocolError):  # a short content-length, or no chunked terminator
        httpx.get(content_url(gateway, file_id), headers={"Authorization": f"Bearer {tenant_key[2]}"})


def test_a_file_gone_at_the_provider_is_the_usual_404(gateway, provider, upstream, tenant_key):
    file_id, _ = provider_holds(upstream, tenant_key, 1024)
    del upstream.files[file_id]
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(gateway, tenant_key[2]).files.content(file_id)
    assert raised.value.body["type"] == "invalid_request_error"


def test_a_file_over_the_body_cap_is_refused_or_cut(gateway, provider, upstream, tenant_key, settings):
    """Declared over UPSTREAM_MAX_BODY_BYTES: the usual 502 before any byte; undeclared: cut once over it."""
    import httpx

    settings.UPSTREAM_MAX_BODY_BYTES = MIB
    upstream.content_chunk = 64 * 1024
    file_id, _ = provider_holds(upstream, tenant_key, 2 * MIB)
    with pytest.raises(openai.InternalServerError) as raised:
        sdk(gateway, tenant_key[2]).files.content(file_id)
    assert raised.value.body["code"] == "upstream_response_too_large"
    upstream.content_declared = False
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(content_url(gateway, file_id), headers={"Authorization": f"Bearer {tenant_key[2]}"})


def test_a_download_past_the_deadline_is_cut(gateway, provider, upstream, tenant_key, settings):
    import httpx

    settings.UPSTREAM_DEADLINE = 0.5
    upstream.content_chunk, upstream.content_pause = 64 * 1024, 0.05  # 64 pieces: ~3 s
    file_id, _ = provider_holds(upstream, tenant_key, 4 * MIB)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(content_url(gateway, file_id), headers={"Authorization": f"Bearer {tenant_key[2]}"})
    assert upstream.content_sent < 4 * MIB
