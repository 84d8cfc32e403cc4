"""Run uvicorn (its usual command line) with a probe in every worker process, for `make bench` and
tests/e2e/test_worker_memory.py: touching `$GOMODEL_PROBE_DIR/go` makes each worker write
`<pid>.json` with its RSS, a timed full `gc.collect()`, the objects the collector tracks (and those
gc.freeze() took out of its way), and which tokenizer vocabularies it holds.

    GOMODEL_PROBE_DIR=/tmp/p python bench/worker_probe.py gomodel.asgi:application --workers 2

uvicorn starts its workers with multiprocessing's spawn, which runs this file again in each of them
(as `__mp_main__`): the probe thread starts there, not in uvicorn's supervising process.
"""

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def snapshot() -> dict:
    started = time.perf_counter()
    gc.collect()
    gc_ms = (time.perf_counter() - started) * 1000
    toktok = sys.modules.get("toktok")
    return {"pid": os.getpid(), "rss_mb": round(rss_mb(), 1), "gc_ms": round(gc_ms, 2),
            "tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
            "vocabularies": sorted(str(k) for k in getattr(toktok, "_CACHE", {})),
            "tiktoken": "tiktoken" in sys.modules}


def _watch(directory: Path):
    trigger = directory / "go"
    seen = None
    while True:
        try:
            stamp = trigger.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != seen:
            seen = stamp
            out = directory / f"{os.getpid()}.json"
            out.with_suffix(".tmp").write_text(json.dumps(snapshot()))
            out.with_suffix(".tmp").replace(out)
        time.sleep(0.05)


def probe(directory: Path, workers: int, timeout: float = 10.0) -> list[dict]:
    """Trigger every worker's probe and return their snapshots (the caller's side)."""
    for old in directory.glob("*.json"):
        old.unlink()
    (directory / "go").write_text(str(time.time()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(directory.glob("*.json"))
        if len(found) >= workers:
            return [json.loads(path.read_text()) for path in found]
        time.sleep(0.05)
    raise TimeoutError(f"{len(list(directory.glob('*.json')))} of {workers} workers answered the probe")


def _one_process(argv: list[str]) -> bool:
    """uvicorn serves in its own process unless --workers > 1 (then it supervises spawned workers)."""
    return "--workers" not in argv or int(argv[argv.index("--workers") + 1]) <= 1


if __name__ in ("__main__", "__mp_main__") and os.environ.get("GOMODEL_PROBE_DIR"):
    if __name__ == "__mp_main__" or _one_process(sys.argv):
        threading.Thread(target=_watch, args=(Path(os.environ["GOMODEL_PROBE_DIR"]),), name="probe",
                         daemon=True).start()

if __name__ == "__main__":
    import uvicorn.main  # the app is found from the working directory (uvicorn's --app-dir), as usual

    sys.exit(uvicorn.main.main())
