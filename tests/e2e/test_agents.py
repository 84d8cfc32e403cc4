"""The real agents, unchanged, in front of every kind of target: Claude Code (`claude -p`), Codex CLI
(`codex exec`) and the OpenAI Agents SDK, pinned (tests/e2e/agents.py), against scripted fake upstreams
(tests/fake_agents.py) behind the gateway: an Anthropic target (native Messages), an OpenAI-format one and a
Gemini one. Each test checks the final answer, that every upstream call carried the provider's key and never
the client's, exactly one usage event per generation call with the client's endpoint, that the gateway refused
nothing the client sent, and the shape of the client's requests against tests/fixtures/agents/."""

import asyncio
import os
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.e2e.agents import CLAUDE_CODE, CODEX, Recorder, compare_with_fixture, npm_binary
from tests.fake_agents import CODE_WORD, PLAIN, WEATHER, AgentAnthropic, AgentGemini, AgentUpstream

# The first test installs the pinned CLIs from npm (about 15 s with a warm npm cache, ~200 MB to fetch without).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TARGETS = {
    # name: (fake class, provider_type, provider key, the header that carries it, model as clients name it)
    "anthropic": (AgentAnthropic, "anthropic", "sk-ant-agents-upstream", "x-api-key", "anthropic/claude-agent"),
    "openai": (AgentUpstream, "openai", "sk-upstream-secret", "authorization", "openai/gpt-agent"),
    "gemini": (AgentGemini, "gemini", "gm-upstream-secret", "x-goog-api-key", "gemini/gemini-agent"),
}
RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def fakes():
    servers = {name: spec[0]().start() for name, spec in TARGETS.items()}
    yield servers
    for server in servers.values():
        server.stop()


class Target:
    def __init__(self, name, fake, key, header, model):
        self.name, self.fake, self.key, self.header, self.model = name, fake, key, header, model

    def assert_keys(self, client_key: str):
        """Every call the gateway made carried the provider's key, and the client's key nowhere."""
        assert self.fake.requests, "the gateway made no upstream call"
        for request in self.fake.requests:
            value = request["headers"].get(self.header, "")
            assert value in (self.key, f"Bearer {self.key}"), (request["path"], self.header, value)
            assert not any(client_key in v for v in request["headers"].values()), request["path"]

    def assert_usage(self, usage_events, endpoint: str):
        """Exactly one usage event per generation call (count_tokens and model listings record none)."""
        calls = len(self.fake.generation_requests())
        assert calls > 0
        events = usage_events(None, expect=calls, timeout=3.0)  # and 50 ms more, for a duplicate to show
        assert len(events) == calls, (len(events), calls)
        assert {(e["endpoint"], e["provider"], e["status"]) for e in events} == {(endpoint, self.name, 200)}


@pytest.fixture(params=list(TARGETS))
def target(request, fakes, make_provider):
    name = request.param
    _, provider_type, key, header, model = TARGETS[name]
    fake = fakes[name]
    make_provider(name=name, provider_type=provider_type, base_url=fake.base_url, api_key=key)
    fake.requests.clear()
    return Target(name, fake, key, header, model)


@pytest.fixture
def recorder(monkeypatch, target, tmp_path):
    """What the client sent the gateway; after the test, with what the gateway sent the fake, in
    <tmp_path>/exchanges.json (to read when a client's new version fails)."""
    recorder = Recorder().install(monkeypatch)
    yield recorder
    (tmp_path / "exchanges.json").write_bytes(orjson.dumps(
        {"client": recorder.requests, "upstream": target.fake.requests}, option=orjson.OPT_INDENT_2, default=str))


@pytest.fixture
def workdir(tmp_path):
    """A project directory with the file the tool round trips read, and a HOME of its own for each client."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text(f"The code word is {CODE_WORD}.\n")
    (tmp_path / "home").mkdir()
    return tmp_path


def run(argv, env, cwd) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "CLAUDE", "CODEX"))}
    result = subprocess.run(argv, env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{argv[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


# -- Claude Code -----------------------------------------------------------------------------------------------

def claude(workdir: Path, gateway: str, key: str, model: str, prompt: str, *extra, nonessential=False) -> dict:
    home = workdir / "home"
    env = {"HOME": str(home), "ANTHROPIC_BASE_URL": gateway, "ANTHROPIC_API_KEY": key,
           "ANTHROPIC_DEFAULT_HAIKU_MODEL": model + "-small", "ANTHROPIC_SMALL_FAST_MODEL": model + "-small",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
           "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CONFIG_DIR": str(home / ".claude")}
    if nonessential:  # its probes of the base URL too (what it sends elsewhere fails here: no internet)
        for name in ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING"):
            env.pop(name)
    argv = [str(npm_binary(CLAUDE_CODE)), "-p", prompt, "--model", model, "--output-format", "json",
            "--max-turns", "4", *extra]
    result = run(argv, env, workdir / "project")
    return orjson.loads(result.stdout)


@pytest.mark.parametrize("scenario", ["plain", "tool"])
def test_claude_code(scenario, target, recorder, workdir, gateway, tenant_key, usage_events):
    key = tenant_key[2]
    if scenario == "plain":
        out = claude(workdir, gateway, key, target.model, "Say pong.")
        assert out["result"] == PLAIN
    else:
        path = workdir / "project" / "notes.txt"
        out = claude(workdir, gateway, key, target.model, f"Read the file {path} and tell me the code word.",
                     "--allowedTools", "Read")
        assert out["result"] == f"The code word is {CODE_WORD}."
        # the request after the tool call carried the file's content back as the Read tool's result
        assert any(CODE_WORD in orjson.dumps(r["body"]).decode() for r in target.fake.generation_requests())
    assert out["is_error"] is False
    if target.name == "openai":  # OpenAI takes a `user` of 64 characters at most; Claude Code's user_id is longer
        assert all(len(r["body"].get("user") or "") <= 64 for r in target.fake.generation_requests())
        # its deferred placeholder tool is withheld, as Anthropic withholds a defer_loading tool
        offered = {t["function"]["name"] for r in target.fake.generation_requests() for t in r["body"]["tools"]}
        assert "Read" in offered and "DeferredToolPlaceholder" not in offered
    assert recorder.refused() == [], recorder.refused()
    target.assert_keys(key)
    target.assert_usage(usage_events, "/v1/messages")
    compare_with_fixture(f"claude-code-{scenario}", recorder.shapes())


@pytest.mark.parametrize("target", ["openai"], indirect=True)
def test_claude_code_with_nonessential_traffic_probes_the_base_url(target, recorder, workdir, gateway, tenant_key,
                                                                   usage_events):
    """`HEAD /api/hello`, Anthropic's reachability probe, is answered as Anthropic answers it (not a 404)."""
    out = claude(workdir, gateway, tenant_key[2], target.model, "Say pong.", nonessential=True)
    assert out["result"] == PLAIN
    assert recorder.refused() == [], recorder.refused()
    assert ("HEAD", "/api/hello", 200) in {(r["method"], r["path"], r["status"]) for r in recorder.requests}
    target.assert_keys(tenant_key[2])
    target.assert_usage(usage_events, "/v1/messages")
    compare_with_fixture("claude-code-nonessential", recorder.shapes())


# -- Codex CLI ---------------------------------------------------------------------------------------------------

def codex(workdir: Path, gateway: str, key: str, model: str, prompt: str) -> str:
    """`codex exec` with a custom provider on the gateway's /v1 (the Responses wire API); the final message."""
    home = workdir / "home" / ".codex"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "gomodel"\n\n'
        '[model_providers.gomodel]\nname = "GoModel"\n'
        f'base_url = "{gateway}/v1"\nenv_key = "GOMODEL_API_KEY"\nwire_api = "responses"\n')
    last = workdir / "last-message.txt"
    env = {"HOME": str(workdir / "home"), "CODEX_HOME": str(home), "GOMODEL_API_KEY": key, "NO_COLOR": "1"}
    argv = [str(npm_binary(CODEX)), "exec", "--skip-git-repo-check", "--sandbox", "read-only",
            "--output-last-message", str(last), prompt]
    run(argv, env, workdir / "project")
    return last.read_text().strip()


@pytest.mark.parametrize("scenario", ["plain", "tool"])
def test_codex(scenario, target, recorder, workdir, gateway, tenant_key, usage_events):
    key = tenant_key[2]
    if scenario == "plain":
        assert codex(workdir, gateway, key, target.model, "Say pong.") == PLAIN
    else:
        path = workdir / "project" / "notes.txt"
        answer = codex(workdir, gateway, key, target.model, f"Read the file {path} and tell me the code word.")
        assert answer == f"The code word is {CODE_WORD}."
        assert any(CODE_WORD in orjson.dumps(r["body"]).decode() for r in target.fake.generation_requests())
    assert recorder.refused() == [], recorder.refused()
    target.assert_keys(key)
    target.assert_usage(usage_events, "/v1/responses")
    compare_with_fixture(f"codex-{scenario}", recorder.shapes())


# -- OpenAI Agents SDK -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_class", ["responses", "chat"])
def test_openai_agents_sdk(model_class, target, recorder, gateway, tenant_key, usage_events):
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # traces would go to OpenAI
    key = tenant_key[2]
    calls = []

    @function_tool(failure_error_function=None)
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return WEATHER

    async def go():
        client = AsyncOpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
        model = (OpenAIResponsesModel if model_class == "responses" else OpenAIChatCompletionsModel)(
            model=target.model, openai_client=client)
        agent = Agent(name="forecaster", instructions="Answer with the tool's words.", tools=[get_weather],
                      model=model)
        try:
            return await Runner.run(agent, "What is the weather in Paris?")
        finally:
            await client.close()

    result = asyncio.run(go())
    assert calls == ["Paris"]
    assert result.final_output == f"The weather in Paris: {WEATHER}."
    assert recorder.refused() == [], recorder.refused()
    target.assert_keys(key)
    target.assert_usage(usage_events, "/v1/responses" if model_class == "responses" else "/v1/chat/completions")
    compare_with_fixture(f"openai-agents-{model_class}", recorder.shapes())
