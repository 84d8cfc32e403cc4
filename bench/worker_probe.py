"""Run uvicorn (its usual command line) with a probe in every worker process, for `make bench` and
tests/e2e/test_worker_memory.py: each worker answers a connection to `$GOMODEL_PROBE_DIR/<pid>.sock` with the time its
collector took since it started (gc.callbacks, per generation), its RSS, a timed full `gc.collect()`, the objects the
collector tracks (and those gc.freeze() took out of its way), and which tokenizer vocabularies it holds.

    GOMODEL_PROBE_DIR=/tmp/p python bench/worker_probe.py gomodel.asgi:application --workers 2

uvicorn starts its workers with multiprocessing's spawn, which runs this file again in each of them
(as `__mp_main__`): the probe thread starts there, not in uvicorn's supervising process.
"""

import gc
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_gc = {"started": 0.0, "seconds": 0.0, "collections": 0, "by_generation": [0.0, 0.0, 0.0], "count": [0, 0, 0]}


def _gc_timer(phase, info):
    if phase == "start":
        _gc["started"] = time.perf_counter()
    else:
        spent = time.perf_counter() - _gc["started"]
        _gc["seconds"] += spent
        _gc["collections"] += 1
        _gc["by_generation"][info["generation"]] += spent
        _gc["count"][info["generation"]] += 1


def snapshot() -> dict:
    gc_seconds, collections = _gc["seconds"], _gc["collections"]  # before the probe's own collection
    started = time.perf_counter()
    gc.collect()
    gc_ms = (time.perf_counter() - started) * 1000
    toktok = sys.modules.get("toktok")
    return {"pid": os.getpid(), "rss_mb": round(rss_mb(), 1), "gc_ms": round(gc_ms, 2),
            "tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
            "vocabularies": sorted(str(k) for k in getattr(toktok, "_CACHE", {})),
            "gc_seconds_total": round(gc_seconds, 4), "gc_collections_total": collections,
            "gc_by_generation": [round(x, 4) for x in _gc["by_generation"]], "gc_count": list(_gc["count"]),
            "tiktoken": "tiktoken" in sys.modules,
            # what a /v1 worker should never load: other HTTP clients, the API's request machinery (DRF's
            # and the admin's apps and models do load: they are installed apps), daphne, Celery
            "loaded": sorted(m for m in ("httpx", "aiohttp", "pyreqwest", "rest_framework.views",
                                         "drf_spectacular.openapi", "daphne", "celery") if m in sys.modules)}


def _serve(directory: Path):
    """Answer each connection to `<dir>/<pid>.sock` with a snapshot; blocked in accept() meanwhile
    (no polling: the probe costs the worker nothing between probes)."""
    path = directory / f"{os.getpid()}.sock"
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall(json.dumps(snapshot()).encode())


def probe(directory: Path, workers: int, timeout: float = 10.0) -> list[dict]:
    """Every worker's snapshot (the caller's side); TimeoutError unless `workers` of them answer."""
    deadline = time.monotonic() + timeout
    while True:
        answers = []
        for path in directory.glob("*.sock"):
            if not Path(f"/proc/{path.stem}").exists():
                continue  # a worker that is gone (restarted)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(max(1.0, deadline - time.monotonic()))
                try:
                    client.connect(str(path))
                    data = b"".join(iter(lambda: client.recv(65536), b""))
                except OSError:
                    continue
            answers.append(json.loads(data))
        if len(answers) >= workers:
            return answers
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(answers)} of {workers} workers answered the probe")
        time.sleep(0.1)


def _one_process(argv: list[str]) -> bool:
    """uvicorn serves in its own process unless --workers > 1 (then it supervises spawned workers)."""
    return "--workers" not in argv or int(argv[argv.index("--workers") + 1]) <= 1


if __name__ in ("__main__", "__mp_main__") and os.environ.get("GOMODEL_PROBE_DIR"):
    if __name__ == "__mp_main__" or _one_process(sys.argv):
        gc.callbacks.append(_gc_timer)  # the time the collector took, all generations, since start
        threading.Thread(target=_serve, args=(Path(os.environ["GOMODEL_PROBE_DIR"]),), name="probe",
                         daemon=True).start()

if __name__ == "__main__":
    import uvicorn.main  # the app is found from the working directory (uvicorn's --app-dir), as usual

    sys.exit(uvicorn.main.main())
