"""What the real-agent tests (test_agents.py) need: the pinned CLIs installed from npm into a cache directory,
a recorder of what each client sends the gateway, and the fixtures that record and compare it.

The CLIs are npm packages with a native binary inside (no download at run time): `npm install` of the pinned
version into `var/agents/<package>-<version>/` (or `$GOMODEL_AGENTS_DIR`), once per version; later runs reuse it.
Without node and npm on the PATH the tests are skipped, loudly (a warning in the summary too).
"""

import fcntl
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import orjson
import pytest

# The versions tested (README, "Agents"); a new version is a new install and, if it asks differently, a fixture diff.
CLAUDE_CODE = ("@anthropic-ai/claude-code", "2.1.337", "claude")
CODEX = ("@openai/codex", "0.171.0", "codex")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "agents"
# Headers whose presence depends on the moment, not on the client's version.
VOLATILE_HEADERS = frozenset(("content-length", "transfer-encoding", "connection", "host", "accept-encoding",
                              "x-stainless-retry-count", "x-stainless-read-timeout", "x-stainless-timeout"))


def agents_dir() -> Path:
    return Path(os.environ.get("GOMODEL_AGENTS_DIR") or ROOT / "var" / "agents")


def npm_binary(spec: tuple[str, str, str]) -> Path:
    """The pinned CLI's executable, installed on first use (a file lock keeps parallel runs from racing)."""
    package, version, binary = spec
    prefix = agents_dir() / f"{package.strip('@').replace('/', '-')}-{version}"
    executable = prefix / "node_modules" / ".bin" / binary
    if executable.exists():
        return executable
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        message = f"node and npm are needed to install {package}@{version}; the real-agent tests are SKIPPED"
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not executable.exists():
            result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error",
                                     "--prefix", str(prefix), f"{package}@{version}"],
                                    capture_output=True, text=True, timeout=900)
            if result.returncode != 0 or not executable.exists():
                raise RuntimeError(f"npm install {package}@{version} failed:\n{result.stdout}\n{result.stderr}")
    return executable


class Recorder:
    """Wraps the gateway's ASGI apps (gomodel.asgi looks them up per request): every request a client makes,
    with its status, whatever route it takes."""

    def __init__(self):
        self.requests: list[dict] = []

    def wrap(self, app):
        async def recorded(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            entry = {"method": scope["method"], "path": scope["path"],
                     "query": sorted({pair.split(b"=", 1)[0].decode() for pair in scope["query_string"].split(b"&")
                                      if pair}),
                     "headers": sorted({name.decode().lower() for name, _ in scope["headers"]}), "status": None}
            chunks = []

            async def receive_and_keep():
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                return message

            async def send_and_note(message):
                if message["type"] == "http.response.start":
                    entry["status"] = message["status"]
                await send(message)

            self.requests.append(entry)
            try:
                return await app(scope, receive_and_keep, send_and_note)
            finally:
                try:
                    body = orjson.loads(b"".join(chunks)) if chunks and b"".join(chunks) else None
                except orjson.JSONDecodeError:
                    body = "<not JSON>"
                entry["body_keys"] = sorted(body) if isinstance(body, dict) else body if body is None else "<other>"
        return recorded

    def install(self, monkeypatch):
        import gomodel.asgi

        monkeypatch.setattr(gomodel.asgi, "gateway_app", self.wrap(gomodel.asgi.gateway_app))
        django_router = gomodel.asgi.django_router
        monkeypatch.setattr(gomodel.asgi, "django_router", lambda: self.wrap(django_router()))
        return self

    def refused(self) -> list[dict]:
        return [r for r in self.requests if r["status"] is None or r["status"] >= 400]

    def shapes(self) -> list[dict]:
        """Each distinct request shape once (method, path, query names, header names, top-level body keys)."""
        seen = {}
        for r in self.requests:
            shape = {"method": r["method"], "path": r["path"], "query": r["query"],
                     "headers": [h for h in r["headers"] if h not in VOLATILE_HEADERS],
                     "body_keys": r.get("body_keys")}
            seen.setdefault(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS), shape)
        return sorted(seen.values(), key=lambda s: orjson.dumps(s, option=orjson.OPT_SORT_KEYS))


def compare_with_fixture(name: str, shapes: list[dict]) -> None:
    """The shapes against tests/fixtures/agents/<name>.json; GOMODEL_RECORD_AGENTS=1 (re)writes the file.
    A client version that asks differently fails here, with the difference to review."""
    path = FIXTURES / f"{name}.json"
    text = orjson.dumps(shapes, option=orjson.OPT_INDENT_2).decode() + "\n"
    if os.environ.get("GOMODEL_RECORD_AGENTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if os.environ.get("GOMODEL_RECORD_AGENTS") != "1":
            pytest.fail(f"{path} did not exist: recorded now, review and commit it")
        return
    expected = orjson.loads(path.read_text())
    if expected != shapes:
        pytest.fail(f"what the client sends changed ({path}; GOMODEL_RECORD_AGENTS=1 re-records it):\n"
                    f"expected {orjson.dumps(expected, option=orjson.OPT_INDENT_2).decode()}\n"
                    f"got {text}")
