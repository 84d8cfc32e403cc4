"""How many of the project's files a warm chat call runs code in (docs/ARCHITECTURE.md, "The request walk"):
the one pipeline keeps the walk short; this test keeps it from growing back."""

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gomodel", "providers", "accounting")
WALK_MAX = 26  # today's walk (the list is printed); 27 before the one pipeline (same measure)


def walk_of_one_call(key: str) -> list[str]:
    from gomodel.gateway.app import gateway_app

    async def main():
        transport = httpx.ASGITransport(app=gateway_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
            headers = {"Authorization": f"Bearer {key}"}
            assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200  # warm
            seen = set()

            def profile(frame, event, arg):
                if event == "call":
                    seen.add(frame.f_code.co_filename)

            sys.setprofile(profile)
            try:
                response = await client.post("/v1/chat/completions", json=body, headers=headers)
            finally:
                sys.setprofile(None)
            assert response.status_code == 200
            await asyncio.sleep(0.05)  # the usage writer's flush: part of the call's walk
            return seen

    files = asyncio.run(main())
    walk = []
    for name in files:
        path = Path(name)
        if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in PACKAGES:
            walk.append(str(path.relative_to(ROOT)))
    return sorted(walk)


def test_a_warm_chat_call_runs_code_in_few_files(provider, tenant_key, transactional_db, settings):
    settings.UPSTREAM_CLIENT = "loop"  # the walk of the default client (CI runs the e2e suites on aiohttp too)
    walk = walk_of_one_call(tenant_key[2])
    print(f"\n{len(walk)} files:\n" + "\n".join(walk))
    assert "gomodel/gateway/pipeline/run.py" in walk
    assert len(walk) <= WALK_MAX, walk
