"""A process of its own for tests/e2e/test_cut_stream_estimate.py: a fake upstream and the clients
that send huge prompts and hang up after two chunks. In the test's process they would hold its GIL
(parsing 8 MB bodies) and the test would measure them, not the gateway's event loop.

Prints the upstream's base URL, waits for `<gateway url> <key> <clients> <requests each>` on stdin,
then prints `<status> <request id>` per request and `done`."""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
import orjson  # noqa: E402

from tests.fake_upstream import FakeUpstream  # noqa: E402

PROMPT_CHARS = 8_000_000


def cut(client: httpx.Client, url: str, key: str, times: int, lock: threading.Lock):
    body = orjson.dumps({"model": "gpt-4o-long-stream", "stream": True,
                         "messages": [{"role": "user", "content": "a" * PROMPT_CHARS}]})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for _ in range(times):
        with client.stream("POST", f"{url}/v1/chat/completions", content=body, headers=headers) as response:
            chunks = 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    chunks += 1
                    if chunks >= 2:
                        break  # hang up: the upstream never gets to report usage
            with lock:
                print(response.status_code, response.headers["x-request-id"], flush=True)


def main():
    upstream = FakeUpstream()
    upstream.start()
    print(upstream.base_url, flush=True)
    url, key, clients, times = sys.stdin.readline().split()
    lock = threading.Lock()
    threads = [threading.Thread(target=cut, args=(httpx.Client(timeout=60), url, key, int(times), lock))
               for _ in range(int(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("done", flush=True)
    upstream.stop()


if __name__ == "__main__":
    main()
