"""Provider configs through the management API: the upstream key is write-only (stored encrypted,
returned redacted), and POST …/test lists the upstream's models or returns its error."""

import http.server
import socket
import threading

import pytest

from accounting.models import AuditEntry
from providers.models import ProviderConfig

SECRET = "sk-upstream-secret-abcd"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_create_list_update_disable(api, upstream):
    response = api.post("/api/v1/providers/", {"name": "fake", "provider_type": "openai",
                                               "base_url": upstream.base_url, "api_key": SECRET,
                                               "model_list": "extra-model"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "api_key" not in body and body["api_key_redacted"] == "…abcd"
    assert body["effective_base_url"] == upstream.base_url and body["source"] == "admin" and body["enabled"]
    config = ProviderConfig.objects.get(pk=body["id"])
    assert config.api_key == SECRET and SECRET not in config.api_key_encrypted

    listing = api.get("/api/v1/providers/").json()
    assert listing["count"] == 1 and SECRET.encode() not in api.get("/api/v1/providers/").content
    assert api.get("/api/v1/providers/", {"provider_type": "groq"}).json()["count"] == 0
    assert api.get("/api/v1/providers/", {"enabled": "true"}).json()["count"] == 1

    response = api.patch(f"/api/v1/providers/{body['id']}/", {"model_list": "a,b"}, format="json")
    assert response.status_code == 200 and response.json()["api_key_redacted"] == "…abcd"  # key kept
    response = api.patch(f"/api/v1/providers/{body['id']}/", {"api_key": "sk-new-key-wxyz"}, format="json")
    assert response.json()["api_key_redacted"] == "…wxyz"
    response = api.patch(f"/api/v1/providers/{body['id']}/", {"api_key": ""}, format="json")
    assert response.json()["api_key_redacted"] == "…wxyz"  # empty: keep the current key
    response = api.put(f"/api/v1/providers/{body['id']}/", {"name": "fake", "provider_type": "openai",
                                                            "base_url": upstream.base_url}, format="json")
    assert response.status_code == 200 and response.json()["model_list"] == "a,b"

    response = api.post(f"/api/v1/providers/{body['id']}/disable/")
    assert response.status_code == 200 and response.json()["enabled"] is False
    api.patch(f"/api/v1/providers/{body['id']}/", {"enabled": True}, format="json")
    assert api.post(f"/api/v1/providers/{body['id']}/disable/").json()["enabled"] is False
    assert api.delete(f"/api/v1/providers/{body['id']}/").status_code == 405
    assert ProviderConfig.objects.filter(pk=body["id"]).exists()

    entries = list(AuditEntry.objects.filter(object_type="providerconfig").order_by("id"))
    assert [e.action for e in entries] == ["create", "update", "update", "disable", "update", "disable"]
    assert entries[0].changes["api_key_set"] is True and entries[2].changes == {"api_key_changed": True}
    for entry in entries:
        assert SECRET not in str(entry.changes) and "sk-new-key-wxyz" not in str(entry.changes)
        assert "api_key" not in entry.changes


@pytest.mark.parametrize("payload, field", [
    ({"name": "x", "provider_type": "nope", "api_key": "k"}, "provider_type"),
    ({"name": "x", "provider_type": "openai"}, "api_key"),  # OpenAI needs a key
    ({"name": "x", "provider_type": "oracle", "api_key": "k"}, "base_url"),  # Oracle has no default URL
    ({"name": "x", "provider_type": "openai", "api_key": "k", "base_url": "not a url"}, "base_url"),
    ({"name": "bad name", "provider_type": "openai", "api_key": "k"}, "name"),
    ({"provider_type": "openai", "api_key": "k"}, "name"),
])
def test_provider_validation(api, payload, field):
    response = api.post("/api/v1/providers/", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not ProviderConfig.objects.exists()


def test_ollama_needs_no_key(api):
    response = api.post("/api/v1/providers/", {"name": "local", "provider_type": "ollama"}, format="json")
    assert response.status_code == 201 and response.json()["api_key_redacted"] == ""


def test_duplicate_name_is_400(api, make_provider):
    make_provider(name="openai")
    response = api.post("/api/v1/providers/", {"name": "openai", "provider_type": "openai", "api_key": "k"},
                        format="json")
    assert response.status_code == 400 and "name" in response.json()


def test_test_lists_the_upstreams_models(api, make_provider, upstream):
    config = make_provider(name="fake", base_url=upstream.base_url, api_key=SECRET)
    response = api.post(f"/api/v1/providers/{config.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["status"] == 200 and body["error"] is None
    assert "gpt-4o-mini" in body["models"]
    request = upstream.requests[-1]
    assert request["method"] == "GET" and request["path"] == "/v1/models"
    assert request["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET.encode() not in response.content


@pytest.fixture
def refusing_upstream():
    """An upstream that answers every request 401 with an OpenAI-style error body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_test_returns_the_upstreams_error(api, make_provider, refusing_upstream):
    config = make_provider(name="fake", base_url=refusing_upstream, api_key=SECRET)
    response = api.post(f"/api/v1/providers/{config.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["status"] == 401 and body["models"] == []
    assert body["error"] == "HTTP 401: Incorrect API key provided"


def test_test_of_an_unreachable_upstream(api, make_provider):
    config = make_provider(name="down", base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=SECRET)
    response = api.post(f"/api/v1/providers/{config.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["status"] is None
    assert "Could not reach provider 'down'" in body["error"] and SECRET not in body["error"]


def test_test_is_not_a_write(api, make_provider, upstream):
    config = make_provider(name="fake", base_url=upstream.base_url)
    api.post(f"/api/v1/providers/{config.pk}/test/")
    assert not AuditEntry.objects.exists()
