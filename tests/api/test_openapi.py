"""GET /openapi.json: the gateway's /v1 endpoints as the seed documents them (same schema names and
fields; every status the gateway really answers), and the management API as drf-spectacular
generates it."""

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.validation import validate_schema

from gomodel.api.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]
SEED_DIRS = [ROOT / "tests" / "fixtures" / "seed"]
ENVELOPE = {"$ref": "#/components/schemas/core.OpenAIErrorEnvelope"}
# Where the served document knowingly says more than the seed (see gomodel/api/openapi_v1.py).
CONTENT_FIELDS = {("core.Message", "content"), ("core.ResponseMessage", "content")}


def load_seed() -> dict:
    for directory in SEED_DIRS:
        for path in sorted(directory.glob("*.txt")) if directory.is_dir() else ():
            match = re.search(r"````yaml[^\n]*\n(.*?)````", path.read_text(), re.S)
            if match:
                return yaml.safe_load(match.group(1))
    pytest.skip("the seed OpenAPI (tests/fixtures/seed/) is missing")


@pytest.fixture(scope="module")
def doc():
    return openapi_document()


@pytest.fixture(scope="module")
def seed():
    return load_seed()


def test_served_and_valid(client, doc):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == doc
    assert doc["openapi"].startswith("3.0")
    validate_schema(doc)
    assert client.post("/openapi.json").status_code == 405


def test_generation_has_no_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_info_servers_and_security_follow_the_seed(doc, seed):
    assert doc["info"]["title"] == seed["info"]["title"] and doc["info"]["version"] == seed["info"]["version"]
    assert doc["info"]["description"].startswith(seed["info"]["description"])
    assert doc["servers"] == seed["servers"]
    assert doc["components"]["securitySchemes"]["BearerAuth"].items() >= \
        seed["components"]["securitySchemes"]["BearerAuth"].items()


def test_chat_completions_follows_the_seed(doc, seed):
    ours, theirs = doc["paths"]["/v1/chat/completions"]["post"], seed["paths"]["/v1/chat/completions"]["post"]
    for field in ("tags", "summary", "security"):
        assert ours[field] == theirs[field]
    assert ours["requestBody"]["required"] is True
    assert ours["requestBody"]["content"]["application/json"]["schema"] == \
        theirs["requestBody"]["content"]["application/json"]["schema"]
    for status, response in theirs["responses"].items():
        assert status in ours["responses"], status
        for media, body in response["content"].items():
            assert ours["responses"][status]["content"][media]["schema"] == body["schema"], (status, media)


def _kind(prop: dict):
    if "$ref" in prop:
        return prop["$ref"]
    if "allOf" in prop and len(prop["allOf"]) == 1:
        return prop["allOf"][0]["$ref"]
    return prop.get("type")


def test_every_seed_schema_is_there_with_its_fields(doc, seed):
    schemas = doc["components"]["schemas"]
    for name, theirs in seed["components"]["schemas"].items():
        assert name in schemas, name
        ours = schemas[name]
        assert ours.get("type") == theirs.get("type"), name
        assert ours.get("enum") == theirs.get("enum"), name
        assert set(theirs.get("required", ())) <= set(ours.get("required", ())), name
        for field, prop in theirs.get("properties", {}).items():
            assert field in ours["properties"], (name, field)
            mine = ours["properties"][field]
            if (name, field) in CONTENT_FIELDS:  # the seed's x-oneof made the schema: null, string or parts
                assert mine["x-oneof"] == prop["x-oneof"] and mine["nullable"] is True
                assert {"type": "array", "items": prop["items"]} in mine["oneOf"]
                assert {"type": "string"} in mine["oneOf"]
                continue
            if _kind(prop) is not None and field != "tool_choice":
                assert _kind(mine) == _kind(prop), (name, field)
            if "description" in prop:
                assert mine.get("description") == prop["description"], (name, field)


GATEWAY_ERRORS = {
    ("/v1/chat/completions", "post"): {"400", "401", "403", "404", "405", "413", "429", "502", "504"},
    ("/v1/embeddings", "post"): {"400", "401", "403", "404", "405", "413", "429", "502", "504"},
    ("/v1/models", "get"): {"401", "405"},
    ("/v1/usage", "get"): {"400", "401", "404", "405"},
    ("/metrics", "get"): {"401", "405"},
    ("/health", "get"): {"405"},
    ("/health/ready", "get"): {"405"},
}


@pytest.mark.parametrize("path, method", list(GATEWAY_ERRORS))
def test_gateway_errors_are_documented_as_envelopes(doc, path, method):
    responses = doc["paths"][path][method]["responses"]
    errors = {status for status in responses if status >= "400" and status != "503"}
    assert errors == GATEWAY_ERRORS[(path, method)]
    for status in errors:
        for media in responses[status]["content"].values():
            assert media["schema"] == ENVELOPE


def test_management_api_is_documented(doc):
    paths = doc["paths"]
    expected = {
        "/api/v1/tenants/": {"get", "post"}, "/api/v1/tenants/{id}/": {"get", "put", "patch"},
        "/api/v1/tenants/{id}/deactivate/": {"post"}, "/api/v1/tenants/{id}/keys/": {"get", "post"},
        "/api/v1/tenants/{id}/usage/": {"get"},
        "/api/v1/keys/": {"get", "post"}, "/api/v1/keys/{id}/": {"get", "put", "patch"},
        "/api/v1/keys/{id}/revoke/": {"post"},
        "/api/v1/providers/": {"get", "post"}, "/api/v1/providers/{id}/": {"get", "put", "patch"},
        "/api/v1/providers/{id}/disable/": {"post"}, "/api/v1/providers/{id}/test/": {"post"},
        "/api/v1/prices/": {"get", "post"}, "/api/v1/prices/{id}/": {"get", "put", "patch"},
        "/api/v1/audit/": {"get"}, "/api/v1/audit/{id}/": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) - {"parameters"} == methods, path
        for method in methods:
            operation = paths[path][method]
            assert operation["security"] == [{"ManagementAuth": []}]
            assert {"400", "401", "403"} <= set(operation["responses"]), (path, method)
            if "{id}" in path:
                assert "404" in operation["responses"]
    assert doc["components"]["securitySchemes"]["ManagementAuth"]["scheme"] == "bearer"
    schemas = doc["components"]["schemas"]
    # secrets: the provider key is write-only, a tenant key's plaintext only in the creation answer
    assert "api_key" in schemas["ProviderConfigRequest"]["properties"]
    assert "api_key" not in schemas["ProviderConfig"]["properties"]
    assert "key" not in schemas["ApiKey"]["properties"] and "key_hash" not in schemas["ApiKey"]["properties"]
    assert "key" in schemas["ApiKeyCreated"]["properties"]
    list_params = {p["name"] for p in paths["/api/v1/keys/"]["get"]["parameters"]}
    assert {"tenant", "created_after", "created_before", "limit", "offset"} <= list_params
