"""Where the gateway's CPU goes per request: py-spy samples every worker while wrk drives load.

    .venv/bin/pip install py-spy==0.4.1   # not a runtime dependency
    .venv/bin/python bench/hotpath_profile.py [--server uvicorn] [--transport httptools] [--mode json] [--conc 10]

Sets up exactly like bench/run.py (mock upstream, fresh SQLite, tenant key, Redis usage stream), then
records each worker process with `py-spy record --format raw --function --nonblocking`. py-spy only
keeps samples of threads that are running, so a function's share of samples times the measured CPU
per response (from /proc) is its CPU cost per request in µs.

Writes bench/results/profile-<server>-<transport>-<mode>-c<conc>.txt (the summary printed here) and
the collapsed stacks next to it (`.folded`, loadable in speedscope.app or flamegraph.pl).
"""

import argparse
import collections
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402  (bench/run.py)

PROJECT = str(bench.ROOT)
HTTP_CLIENT = {"pyreqwest", "httpx", "httpcore", "httpx_aiohttp", "aiohttp", "yarl", "multidict", "aiohappyeyeballs",
               "propcache", "h11", "anyio", "sniffio", "certifi", "idna"}
SERVERS = {"uvicorn", "granian", "daphne", "twisted", "autobahn", "httptools", "h2"}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def component(func: str, file: str) -> str | None:
    """What a frame belongs to; None for project code (reported per function) and for the standard
    library (charged to its caller). py-spy prints paths relative to their sys.path entry."""
    top = file.split("/", 1)[0].removesuffix(".py")
    if top in HTTP_CLIENT or file.startswith("gomodel/gateway/upstream_client/"):
        return "upstream HTTP client (httpx API + transport)"
    if top == "redis":
        return "redis-py (usage XADD)"
    if top in SERVERS:
        return f"ASGI server ({top})"
    if top in ("django", "asgiref", "channels"):
        return "Django / asgiref"
    if top == "asyncio":
        if file == "asyncio/runners.py":
            return "event loop internals (uvloop C code: epoll, callbacks, socket reads)"
        return "asyncio (tasks, futures, streams)"
    if top in PROJECT_PACKAGES or file.startswith("<") or "/" not in file or top in STDLIB_PACKAGES:
        return None  # project code, or a standard-library module (single files are stdlib here)
    return top  # another third-party package


PROJECT_PACKAGES = {"gomodel", "providers", "accounting"}
STDLIB_PACKAGES = {"multiprocessing", "concurrent", "json", "logging", "email", "http", "urllib", "importlib",
                   "collections", "encodings", "ctypes", "unittest", "xml", "zoneinfo", "sqlite3"}


ENTRY_FILES = ("multiprocessing/", "granian/cli", "granian/server", "granian/_internal", "uvicorn/_subprocess",
               "uvicorn/supervisors", "uvicorn/server.py", "uvicorn/_compat", "uvicorn/main", "asyncio/runners.py",
               "asyncio/base_events.py", "daphne/cli", "daphne/server", "twisted/", "<string>", "granian:")


def is_entry(key: str) -> bool:
    """`func (file)` keys of the frames every sample of a process sits under."""
    file = key.rsplit("(", 1)[-1].rstrip(")")
    return file.startswith(ENTRY_FILES) or file == "granian"


def parse_frame(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame)
    if not m:
        return frame, ""
    return m.group("func"), m.group("file")


def short(file: str) -> str:
    for marker in (PROJECT + "/", "/site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def analyse(folded: list[str]) -> dict:
    total = 0
    inclusive = collections.Counter()
    self_time = collections.Counter()
    buckets = collections.Counter()
    for line in folded:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [parse_frame(f) for f in stack.split(";")]
        frames = [(func, file) for func, file in frames if file]  # drop "process ..." / "thread ..." roots
        if not frames:
            continue
        total += n
        seen = set()
        for func, file in frames:
            key = f"{func} ({short(file)})"
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
        leaf_func, leaf_file = frames[-1]
        self_time[f"{leaf_func} ({short(leaf_file)})"] += n
        # The bucket: walking from the leaf, the first frame in a known component or in project code.
        bucket = "other (standard library)"
        for func, file in reversed(frames):
            comp = component(func, file)
            if comp is not None:
                bucket = comp
                break
            if file.split("/", 1)[0] in PROJECT_PACKAGES:
                bucket = f"project: {func} ({short(file)})"
                break
        buckets[bucket] += n
    return {"total": total, "inclusive": inclusive, "self": self_time, "buckets": buckets}


def render(result: dict, us_per_req: float, main_us: float, top: int, header: list[str]) -> str:
    """us_per_req: measured CPU per response of the workers (/proc, all threads); main_us: that of their
    main threads, where the event loop and so all the Python code runs: the scale for every row."""
    total = result["total"] or 1

    def row(name, n):
        share = n / total
        return f"| {share * 100:5.1f}% | {share * main_us:6.0f} | {name} |"

    lines = [*header, "",
             f"Samples: {result['total']:,}. CPU per response, measured in /proc: {us_per_req:.0f} µs for the "
             f"workers, {main_us:.0f} µs of it in their main threads (the event loop: all the Python code; the "
             "rest is native threads such as granian's Rust runtime). µs/req below = share of samples × "
             "main-thread CPU per response. py-spy charges time in a C call or a system call (a socket write, "
             "which on loopback also wakes the receiver) to the Python line that made it.", "",
             "## By component (each sample charged to the innermost library or project function)", "",
             "| share | µs/req | component |", "|---:|---:|---|"]
    lines += [row(k, v) for k, v in result["buckets"].most_common(top)]
    lines += ["", "## Project functions, inclusive (time spent in them and everything they call)", "",
              "| share | µs/req | function |", "|---:|---:|---|"]
    project = [(k, v) for k, v in result["inclusive"].most_common()
               if re.search(r"\((gomodel|providers|accounting)/", k) and v < 0.97 * total]
    lines += [row(k, v) for k, v in project[:top]]
    lines += ["", "## Hottest functions, inclusive (all code but the process and event-loop entry frames)", "",
              "| share | µs/req | function |", "|---:|---:|---|"]
    lines += [row(k, v) for k, v in [(k, v) for k, v in result["inclusive"].most_common()
                                      if not is_entry(k)][:top]]
    lines += ["", "## Hottest functions, self time", "", "| share | µs/req | function |", "|---:|---:|---|"]
    lines += [row(k, v) for k, v in result["self"].most_common(top)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="uvicorn", choices=["uvicorn", "granian", "daphne"])
    p.add_argument("--transport", default="httptools",
                   choices=["httptools", "reqwest", "aiohttp", "httpx-aiohttp", "httpx"],
                   help="the gateway's own client (httptools) or a bench/transports.py comparison")
    p.add_argument("--mode", default="json", choices=["json", "stream"])
    p.add_argument("--conc", type=int, default=10)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rate", type=int, default=500, help="py-spy samples per second per worker")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--nice", type=int, default=0, help="as in run.py")
    p.add_argument("--limits", choices=["all", "rpm", "none"], default="none",
                   help="send with run.py's rate-limited key (all: every limit of key and tenant, allow-lists)")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(bench.BIN / "py-spy")
    if not os.access(spy, os.X_OK):
        print("bench/hotpath_profile.py needs py-spy: .venv/bin/pip install py-spy==0.4.1", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("bench/hotpath_profile.py needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    run_args = bench.parse_args(["--workers", str(args.workers), "--warmup", "2", "--nice", str(args.nice),
                                 "--transports", "httptools", "--limits", args.limits])
    b = bench.Bench(run_args)
    name = f"profile-{args.server}-{args.transport}-{args.mode}-c{args.conc}" + (
        f"-limits-{args.limits}" if args.limits != "none" else "")
    bench.RESULTS_DIR.mkdir(exist_ok=True)
    out_txt = bench.RESULTS_DIR / f"{name}.txt"
    out_folded = bench.RESULTS_DIR / f"{name}.folded"
    try:
        b.start_mock()
        b.prepare_gateway()
        key = b.limited_key or b.key
        proc, base, _ = b.start_gateway(args.server, args.transport, key)
        url = base + "/v1/chat/completions"
        stream = args.mode == "stream"
        bench.run_wrk(b.procs, url, args.conc, 2, stream, key, 1, 5)  # warm-up
        pids = [pid for pid in bench.process_tree(proc.pid) if _is_python(pid)]
        workers = [pid for pid in pids if pid != proc.pid] or pids
        spies = []
        for pid in workers:
            path = b.tmp / f"spy-{pid}.folded"
            spies.append((path, b.procs.start("py-spy", [spy, "record", "--pid", str(pid), "--format", "raw",
                                                         "--function", "--nonblocking", "--rate", str(args.rate),
                                                         "--duration", str(args.seconds + 2), "--output",
                                                         str(path)], os.environ.copy(), b.tmp / "py-spy.log")))
        time.sleep(1.0)  # py-spy attaches
        cpu0, main0 = bench.cpu_seconds(workers), main_thread_seconds(workers)
        data = bench.run_wrk(b.procs, url, args.conc, args.seconds, stream, key, 1, 5)
        cpu1, main1 = bench.cpu_seconds(workers), main_thread_seconds(workers)
        for _, spy_proc in spies:
            spy_proc.wait(timeout=30)
        folded = []
        for path, _ in spies:
            if path.exists():
                folded += path.read_text(errors="replace").splitlines()
        if not folded:
            raise RuntimeError(f"py-spy recorded nothing{bench.tail(b.tmp / 'py-spy.log')}")
        out_folded.write_text("\n".join(folded) + "\n")
        n = data["requests"]
        us_per_req = (cpu1 - cpu0) / n * 1e6 if n else 0.0
        main_us = (main1 - main0) / n * 1e6 if n else 0.0
        result = analyse(folded)
        header = [f"# Profile: {args.server}/{args.transport}, {args.mode}, c={args.conc}, {args.seconds} s, "
                  f"{len(workers)} worker(s) sampled at {args.rate} Hz",
                  "",
                  f"wrk: {n / (data['duration_us'] / 1e6):,.0f} req/s, p50 {data['p50_us'] / 1000:.2f} ms, "
                  f"p99 {data['p99_us'] / 1000:.2f} ms (py-spy in non-blocking mode adds a little CPU of its own)."]
        report = render(result, us_per_req, main_us, args.top, header)
        out_txt.write_text(report)
        print(report)
        print(f"(written to {out_txt} and {out_folded})")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        b.cleanup()


def main_thread_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/task/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / bench.CLK_TCK


def _is_python(pid: int) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return "python" in os.path.basename(exe)


if __name__ == "__main__":
    sys.exit(main())
