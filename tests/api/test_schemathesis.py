"""schemathesis against a running gateway (the `gateway` fixture: uvicorn serving the full ASGI app,
sharing the test database), generating requests from GET /openapi.json.

Two runs, each printing how many cases it ran:
- the gateway's own endpoints (/v1, /health, /metrics), with a tenant key (the master key for
  /v1/usage, which then takes any ?tenant=), against a provider that points at the fake upstream;
- the management API (/api/v1), with the master key, its {id} paths pointed at real objects.

Every answer must have a documented status and content type and match its documented schema; no 5xx
but the upstream failures /v1 documents (502, 504) and /health/ready's 503; every /v1 error is the
gateway's envelope, and no answer anywhere carries a traceback or an HTML error page
(tests/api/schemathesis_hooks.py). GOMODEL_FUZZ_EXAMPLES and GOMODEL_FUZZ_SEED change the size and
the seed of a run (defaults: 50 examples an operation and a fixed seed, so that CI is repeatable);
GOMODEL_FUZZ_LOG=<dir> keeps schemathesis's full report there.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from accounting.models import AuditEntry

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ST = Path(sys.executable).parent / "st"
EXAMPLES = int(os.environ.get("GOMODEL_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("GOMODEL_FUZZ_SEED", "20261125"))
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
          "response_headers_conformance", "unsupported_method", "allow_header_conformance", "missing_required_header"]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def toml(config: dict) -> str:
    """Enough TOML for a schemathesis config: scalars and inline tables at the top, then
    [tables] and [[arrays of tables]] one level deep."""
    lines, tables = [], []
    for key, value in config.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            tables += [(f"[[{key}]]", item) for item in value]
        elif isinstance(value, dict) and key in ("generation", "checks", "phases"):
            tables.append((f"[{key}]", value))
        else:
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    for header, table in tables:
        lines += ["", header] + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def run_schemathesis(request, tmp_path, gateway, name, config, include_path_regex):
    config = {
        "base-url": gateway,
        "hooks": "tests.api.schemathesis_hooks",
        "seed": SEED,
        "workers": 1,
        "request-timeout": 10,
        "generation": {"max-examples": EXAMPLES, "database": "none"},
        "checks": {"enabled": False, **{check: {"enabled": True} for check in CHECKS},
                   "gateway_error_envelope": {"enabled": True}, "no_traceback": {"enabled": True}},
        **config,
    }
    path = tmp_path / f"{name}.toml"
    path.write_text(toml(config))
    command = [str(ST), "--config-file", str(path), "--no-color", "run", f"{gateway}/openapi.json",
               "--include-path-regex", include_path_regex]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    output = result.stdout + result.stderr
    if os.environ.get("GOMODEL_FUZZ_LOG"):
        Path(os.environ["GOMODEL_FUZZ_LOG"]).joinpath(f"{name.split()[0]}.out").write_text(output)
    match = re.search(r"Test cases:\s*\n\s*(\d+) generated", output)
    cases = int(match.group(1)) if match else 0
    summary = f"schemathesis, {name}: {cases} cases run (at most {EXAMPLES} examples an operation, seed {SEED})"
    with request.getfixturevalue("capsys").disabled():  # shown even when the test passes
        print(f"\n{summary}")
    return result.returncode, output, cases


def allow_5xx(*statuses):
    return {"not_a_server_error": {"expected-statuses": ["1xx", "2xx", "3xx", "4xx", *statuses]}}


@pytest.fixture
def fake_provider(make_provider, upstream):
    return make_provider(name="fake", base_url=upstream.base_url)


def test_gateway_endpoints_follow_their_document(request, tmp_path, gateway, fake_provider, tenant_key):
    config = {"operations": [
        # 502/504: the upstream's failures, as documented
        # and what the schema forbids must be a 4xx
        {"include-path-regex": "^/v1/(chat/completions|embeddings|models|messages)",
         "headers": {"Authorization": f"Bearer {tenant_key[2]}"},
         "checks": {**allow_5xx(502, 504), "negative_data_rejection": {"enabled": True}}},
        # the Responses API: its documented answers, no 5xx but the upstream's
        {"include-path-regex": "^/v1/responses", "headers": {"Authorization": f"Bearer {tenant_key[2]}"},
         "checks": allow_5xx(502, 504)},
        # the master key names any tenant: ?tenant= is exercised too
        {"include-path": "/v1/usage", "headers": {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}},
        {"include-path": "/health/ready", "checks": allow_5xx(503)},
        {"include-path": "/metrics", "headers": {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}},
    ]}
    code, output, cases = run_schemathesis(request, tmp_path, gateway, "gateway", config, "^/(v1|health|metrics)")
    assert cases > 0, output
    assert code == 0, output


@pytest.fixture
def objects(make_provider, upstream, tenant_key):
    """One of each, so that the {id} operations also reach real objects, not only 404s."""
    from accounting.audit.services import do_update
    from accounting.prices.services import do_create_price

    tenant, key, _ = tenant_key
    provider = make_provider(name="fake", base_url=upstream.base_url)
    do_update("master", tenant, {"name": "Acme Corp"})
    price = do_create_price("master", {"provider": "openai", "model_pattern": "gpt-4o-mini",
                                       "input_per_million": 1, "output_per_million": 2})
    audit = AuditEntry.objects.filter(object_type="tenant", action="update").get()
    return {"tenants": tenant.pk, "keys": key.pk, "providers": provider.pk, "prices": price.pk, "audit": audit.pk}


@pytest.mark.timeout(300)  # ~30 s on SQLite, ~50 s on Postgres: room for a loaded machine
def test_management_api_follows_its_document(request, tmp_path, gateway, objects):
    config = {
        "headers": {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"},
        "operations": [{"include-path-regex": f"^/api/v1/{resource}/\\{{id\\}}/",
                        "parameters": {"path.id": str(pk)}} for resource, pk in objects.items()],
    }
    code, output, cases = run_schemathesis(request, tmp_path, gateway, "management API", config, "^/api/v1/")
    assert cases > 0, output
    assert code == 0, output
