"""The memory of the whole `make run` stack after a warm-up: every process the supervisor started
(web workers, Celery, Redis) and the supervisor itself, by RSS.

    python bench/stack_memory.py                        # this checkout, this interpreter
    python bench/stack_memory.py --root /tmp/old --python /path/to/venv/bin/python --serve "manage.py serve"

Everything is local and temporary: a fresh SQLite DB and var/ dir, a Redis of the stack's own (started
by the supervisor on a free port), the mock upstream of bench/, a tenant and key; 200 JSON requests
and 100 streams (some cut after a chunk) warm it up; then RSS per process, and Ctrl-C (SIGTERM).
"""

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from run import process_tree  # noqa: E402
from worker_probe import rss_mb  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(what)


def request(url: str, body: dict | None = None, key: str = "", read_lines: int | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {key}",
                                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        if read_lines is None:
            response.read()
        else:
            for _ in range(read_lines):
                response.readline()  # then hang up
        return response.status


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:90]
    except OSError:
        return "?"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(BENCH_DIR.parent), help="the checkout to run")
    p.add_argument("--python", default=sys.executable, help="the interpreter (its venv) to run it with")
    p.add_argument("--serve", default="-m gomodel.supervisor", help="what `make run` runs, after the interpreter")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    root = Path(args.root).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="gomodel-stack-"))
    port, mock_port, redis_port = free_port(), free_port(), free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gomodel.settings", "PORT": str(port),
           "GOMODEL_VAR_DIR": str(tmp / "var"), "DATABASE_URL": f"sqlite:///{tmp / 'stack.sqlite3'}",
           "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "OPENAI_API_KEY": "sk-bench",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1", "WEB_CONCURRENCY": str(args.workers),
           "LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("PYTHONPATH", None)
    mock = subprocess.Popen([sys.executable, str(BENCH_DIR / "mock_upstream.py"), "--port", str(mock_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(tmp / "stack.log", "wb")
    stack = subprocess.Popen([args.python, *shlex.split(args.serve)], cwd=root, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: request(f"{base}/health") == 200, 120, "the stack to answer /health")
        manage = [args.python, "manage.py"]
        subprocess.run([*manage, "create_tenant", "stack"], cwd=root, env=env, check=True, capture_output=True)
        out = subprocess.run([*manage, "create_api_key", "stack", "--name", "stack"], cwd=root, env=env, check=True,
                             capture_output=True, text=True).stdout
        key = out.strip().splitlines()[-1].strip()
        chat = f"{base}/v1/chat/completions"
        for i in range(200):
            request(chat, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {i}"}]}, key)
        for i in range(100):
            body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": f"hi {i}"}]}
            request(chat, body, key, read_lines=2 if i % 4 == 0 else None)  # every 4th cut: estimated
        time.sleep(5)  # the drain runs, the cut streams are counted
        pids = process_tree(stack.pid)
        rows = sorted(((rss_mb(pid), pid, command_line(pid)) for pid in pids), reverse=True)
        total = sum(r[0] for r in rows)
        print(f"`make run` stack ({root}, {args.python}): {len(rows)} processes, {total:.0f} MB RSS in all")
        for mb, pid, cmd in rows:
            print(f"  {mb:6.1f} MB  {pid:>7}  {cmd}")
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
        mock.terminate()
        mock.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
