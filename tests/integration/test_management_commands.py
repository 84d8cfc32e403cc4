"""create_tenant, create_api_key and revoke_api_key, run through call_command against the real database."""

import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command

from accounting.models import ApiKey, Tenant

pytestmark = [pytest.mark.django_db]

KEY_RE = re.compile(r"^sk_gom_[A-Za-z0-9_-]{43}$")


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_tenant():
    out, _ = run("create_tenant", "acme", "--name", "Acme Corp")
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.active) == ("Acme Corp", True)
    assert f"id {tenant.id}" in out


def test_create_tenant_name_defaults_to_the_slug():
    run("create_tenant", "beta")
    assert Tenant.objects.get(slug="beta").name == "beta"


def test_duplicate_slug_is_an_error():
    run("create_tenant", "acme")
    with pytest.raises(CommandError, match="already exists"):
        run("create_tenant", "acme")
    assert Tenant.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize("slug", ["Acme", "ac me", "acme!", ""])
def test_invalid_slug_is_an_error(slug):
    with pytest.raises(CommandError):
        run("create_tenant", slug)
    assert not Tenant.objects.exists()


def test_create_api_key_prints_the_plaintext_alone_on_the_last_line_and_stores_only_its_hash():
    run("create_tenant", "acme")
    out, err = run("create_api_key", "acme", "--name", "ci", "--rpm", "60", "--tpm", "10000")

    lines = out.splitlines()
    plaintext = lines[-1]
    assert KEY_RE.match(plaintext), plaintext
    key = ApiKey.objects.get()
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert key.prefix == f"sk_gom_…{plaintext[-4:]}"
    assert (key.name, key.rpm_limit, key.tpm_limit, key.active, key.tenant.slug) == ("ci", 60, 10000, True, "acme")
    # The plaintext is nowhere in the row and only once in the output.
    row = {f.attname: getattr(key, f.attname) for f in ApiKey._meta.concrete_fields}
    assert not any(plaintext in str(value) for value in row.values())
    assert (out + err).count(plaintext) == 1
    assert key.prefix in err and f"id {key.id}" in err


def test_each_key_is_different():
    run("create_tenant", "acme")
    keys = {run("create_api_key", "acme")[0].splitlines()[-1] for _ in range(3)}
    assert len(keys) == 3 and all(KEY_RE.match(k) for k in keys)
    assert ApiKey.objects.count() == 3


def test_create_api_key_for_an_unknown_tenant_is_an_error():
    with pytest.raises(CommandError, match="No tenant 'ghost'"):
        run("create_api_key", "ghost")
    assert not ApiKey.objects.exists()


def test_create_api_key_with_concurrency_and_an_allow_list():
    run("create_tenant", "acme")
    run("create_api_key", "acme", "--concurrency", "3", "--models", "openai/*, anthropic/claude-sonnet-4,smart")
    key = ApiKey.objects.get()
    assert key.concurrency_limit == 3
    assert key.allowed_models == ["openai/*", "anthropic/claude-sonnet-4", "smart"]


@pytest.mark.parametrize("models", ["openai/gpt*", "*", "bad entry"])
def test_create_api_key_rejects_a_bad_allow_list(models):
    run("create_tenant", "acme")
    with pytest.raises(CommandError):
        run("create_api_key", "acme", "--models", models)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("flag", ["--rpm", "--tpm", "--concurrency"])
def test_create_api_key_rejects_a_non_positive_limit(flag):
    run("create_tenant", "acme")
    with pytest.raises(CommandError):
        run("create_api_key", "acme", flag, "0")
    assert not ApiKey.objects.exists()


def _new_key(tenant="acme") -> tuple[ApiKey, str]:
    if not Tenant.objects.filter(slug=tenant).exists():
        run("create_tenant", tenant)
    plaintext = run("create_api_key", tenant)[0].splitlines()[-1]
    return ApiKey.objects.get(key_hash=hashlib.sha256(plaintext.encode()).hexdigest()), plaintext


def test_revoke_by_id():
    key, _ = _new_key()
    other, _ = _new_key()
    out, _ = run("revoke_api_key", str(key.id))
    key.refresh_from_db()
    other.refresh_from_db()
    assert key.active is False and other.active is True
    assert key.prefix in out


@pytest.mark.parametrize("ascii_ellipsis", [False, True])
def test_revoke_by_prefix(ascii_ellipsis):
    key, plaintext = _new_key()
    prefix = key.prefix.replace("…", "...") if ascii_ellipsis else key.prefix
    run("revoke_api_key", prefix)
    key.refresh_from_db()
    assert key.active is False


def test_revoke_unknown_key_is_an_error():
    _new_key()
    with pytest.raises(CommandError, match="No API key"):
        run("revoke_api_key", "999999")
    with pytest.raises(CommandError, match="No API key"):
        run("revoke_api_key", "sk_gom_…zzzz")
    assert ApiKey.objects.filter(active=True).count() == 1


def test_revoke_an_ambiguous_prefix_is_an_error():
    key, _ = _new_key()
    twin, _ = _new_key()
    ApiKey.objects.filter(id=twin.id).update(prefix=key.prefix)  # 4 characters can collide
    with pytest.raises(CommandError, match="several keys"):
        run("revoke_api_key", key.prefix)
    assert ApiKey.objects.filter(active=True).count() == 2


def test_create_api_key_with_labels():
    run("create_tenant", "acme")
    run("create_api_key", "acme", "--labels", "team:search, env:prod")
    assert ApiKey.objects.get().labels == {"team": "search", "env": "prod"}


@pytest.mark.parametrize("labels", ["team", ",".join(f"l{i}:v" for i in range(17)), "team:" + "x" * 65])
def test_create_api_key_rejects_bad_labels(labels):
    run("create_tenant", "acme")
    with pytest.raises(CommandError):
        run("create_api_key", "acme", "--labels", labels)
    assert not ApiKey.objects.exists()
