"""bench/run's measurements: Warren's event-worker beside a bare librabbitmq C consumer and
FastStream 0.7.8 peers, in one run, alternating; writes docs/BENCHMARKS.md.

Started by bench/run (after bench/lib/setup.sh); see bench/run for the environment it reads.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import common
from common import (LOGS, OUT, PEERS, ROOT, BrokerWatch, Proc, event_rows, http_get, loadavg, median, monotonic,
                    note, publish, reset_ingest_state, run, wait_http_2xx, wait_port_free)

common.PROG = "bench/run"

N = common.env_int("BENCH_N", 100_000)
INGEST_N = common.env_int("BENCH_INGEST_N", max(1000, N // 5))
RUNS = common.env_int("BENCH_RUNS", 3)
WRK_SECONDS = common.env_int("BENCH_WRK_SECONDS", 10)
READY_RUNS = common.env_int("BENCH_READY_RUNS", 5)
PORT = common.env_int("BENCH_HEALTH_PORT", 18090)
PROFILE = os.environ.get("BENCH_PROFILE", "auto")  # auto: profile Warren where it misses a target; 0: never
QUEUE = "bench-events"
WORKER = os.environ["WORKER"]
PY = os.environ["PY"]
DOC = ROOT / "docs" / "BENCHMARKS.md"

NOOP_PREFETCH = 1000  # the C consumer's, for all three
INGEST_PREFETCH = 100  # event-worker's default PREFETCH (CONCURRENCY default 16)

NAMES = {"c": "C (librabbitmq)", "warren": "Warren", "faststream": "FastStream"}
# The event-worker builds under test, by contender: (binary, environment on top of the bench's).
# bench/run has one; bench/compare puts several here (two commits; plain and TLS URLs), with their NAMES.
WARRENS: dict[str, tuple[str, dict]] = {"warren": (WORKER, {})}
problems: list[str] = []
runs_log: list[str] = []  # one markdown row per measurement run


def worker_cmd(kind: str, handler: str) -> tuple[list, dict]:
    base = {"QUEUE": QUEUE, "HEALTH_PORT": str(PORT), "HEALTH_HOST": "127.0.0.1"}
    if kind == "c":
        return [OUT / "consumer", QUEUE, str(N)], {}
    prefetch = NOOP_PREFETCH if handler == "noop" else INGEST_PREFETCH
    if kind in WARRENS:
        binary, extra = WARRENS[kind]
        return [binary, "run"], {**base, "HANDLER": handler, "PREFETCH": str(prefetch), "LOG_LEVEL": "info", **extra}
    return [PY, PEERS / f"faststream_{handler}.py"], {**base, "PREFETCH": str(prefetch)}


def start(kind: str, handler: str, tag: str) -> Proc:
    if kind != "c":
        wait_port_free(PORT)
    cmd, env = worker_cmd(kind, handler)
    return Proc(kind, cmd, env, LOGS / f"{tag}.{kind}.log", cwd=PEERS if kind == "faststream" else None)


def stop(proc: Proc, what: str) -> int:
    """Ends a worker: the C consumer exits by itself; the others get SIGTERM. Checks the exit."""
    if proc.name == "c":
        rc = proc.wait(30)
    else:
        rc = proc.terminate()
    # uvicorn re-raises the SIGTERM it handled once the app has shut down: -15 is its clean exit.
    ok = rc == 0 or (proc.name == "faststream" and rc == -15)
    if not ok:
        problems.append(f"{what}: {NAMES[proc.name]} exited with code {rc} (log {proc.log_path})")
    if proc.name in WARRENS:
        lost = [ln for ln in proc.log_path.read_text(errors="replace").splitlines() if "AMQP connection lost" in ln]
        if lost:
            reason = re.search(r'"warren.amqp.error":"([^"]{0,160})', lost[0])
            problems.append(f"{what}: Warren lost its broker connection {len(lost)}× (the broker was up): "
                            f"{reason.group(1) if reason else lost[0][:160]} (log {proc.log_path.relative_to(ROOT)})")
    return rc


# ---------------------------------------------------------------- throughput


def drain(watch: BrokerWatch, kind: str, handler: str, n: int, run_no: int, perf: Path | None = None) -> dict:
    """Prefills QUEUE with n events, runs the consumer until the broker reports the queue empty
    with nothing unacknowledged, then stops it. Timed from exec."""
    tag = f"{handler}{'-perf' if perf else ''}.{run_no}"
    publish(QUEUE, n, reset=True)
    if handler == "ingest":
        reset_ingest_state()
    watch.wait_counts(QUEUE, n)
    watch.wait_counts(QUEUE + ".dead", 0)
    load = loadavg()
    t0 = monotonic()
    recorder = None
    if perf is not None:  # system-wide (-p would miss the threads the worker starts after attaching)
        recorder = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "499", "-o", str(perf)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        t0 = monotonic()
    proc = start(kind, handler, tag)
    proc.start_sampling()
    try:
        t_end = watch.wait_drained(QUEUE, t0, timeout=max(120, n / 200), alive=proc.alive)
    finally:
        if recorder is not None:
            recorder.send_signal(2)
            recorder.wait(60)
    t_first = watch.first_after(QUEUE, t0, lambda r, u: r < n or u > 0) or t0
    hwm = proc.hwm_kb()
    cpu = proc.cpu_seconds()
    rss = proc.stop_sampling()
    rc = stop(proc, f"{handler} run {run_no}")
    watch.wait_counts(QUEUE, 0)
    dead = watch.latest(QUEUE + ".dead")[1]
    if dead:
        problems.append(f"{handler} run {run_no}: {NAMES[kind]} dead-lettered {dead} messages")
    rows = ""
    if handler == "ingest":
        got = event_rows(1, n)
        rows = f"{got[0]} rows"
        if got != (n, n, n):
            problems.append(f"ingest run {run_no}: {NAMES[kind]} left (rows, distinct ids, ids in range) = {got}, not {n} each")
    secs = t_end - t0
    result = {"rate": n / secs, "steady": n / max(1e-9, t_end - t_first), "secs": secs,
              "first": t_first - t0, "rss_kb": rss, "hwm_kb": max(hwm, rss), "rc": rc, "cpu": cpu,
              "pid": proc.pid, "run": run_no}
    if perf is None:
        cpu_text = f"{cpu / secs * 100:.0f} %" if cpu else "–"
        runs_log.append(f"| {handler} | {run_no} | {NAMES[kind]} | {n} | {secs:.2f} s | {result['rate']:,.0f} msg/s | "
                        f"{result['first'] * 1000:.0f} ms | {cpu_text} | {rss / 1024:.1f} MB | {rc} {rows} | {load} |")
    note(f"{handler} run {run_no}: {NAMES[kind]}: {n} in {secs:.2f} s = {result['rate']:,.0f} msg/s "
         f"(first delivery after {result['first'] * 1000:.0f} ms), max RSS {rss / 1024:.1f} MB, exit {rc}, load {load}")
    return result


def throughput(watch: BrokerWatch, handler: str, kinds: list[str], n: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for run_no in range(1, RUNS + 1):
        order = kinds[run_no - 1:] + kinds[:run_no - 1]  # alternate who goes first
        for kind in order:
            try:
                results[kind].append(drain(watch, kind, handler, n, run_no))
            except Exception as e:  # noqa: BLE001 — record and go on
                problems.append(f"{handler} run {run_no}: {NAMES[kind]}: {e}")
                note(f"{handler} run {run_no}: {NAMES[kind]} FAILED: {e}")
                common.kill_leftovers()
    return results


# ---------------------------------------------------------------- health endpoints


def wrk(path: str) -> dict:
    out = run(["wrk", "-t1", "-c16", f"-d{WRK_SECONDS}s", "--latency", f"http://127.0.0.1:{PORT}{path}"],
              timeout=WRK_SECONDS + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(1).strip() if errors else "", "total": total}


def health(kinds: list[str]) -> tuple[dict, dict]:
    """wrk on /internal/alive and /internal/ready of the ingest workers (idle: empty queue), RSS idle
    and under wrk. Returns ({kind: {path: [results]}}, {kind: {"idle": [kb], "wrk": [kb]}})."""
    results = {k: {"/internal/alive": [], "/internal/ready": []} for k in kinds}
    memory = {k: {"idle": [], "wrk": []} for k in kinds}
    for run_no in range(1, RUNS + 1):
        order = kinds if run_no % 2 else kinds[::-1]
        for kind in order:
            publish(QUEUE, 1, reset=True)  # the topology; one event to ingest
            reset_ingest_state()
            proc = start(kind, "ingest", f"health.{run_no}")
            try:
                wait_http_2xx(proc, PORT, "/internal/ready", timeout=60)
                time.sleep(2)
                memory[kind]["idle"].append(proc.rss_kb())
                memory[kind].setdefault("parts", []).append(
                    {f: proc.status_kb(f) for f in ("RssAnon", "RssFile", "RssShmem", "VmData", "Threads")})
                proc.start_sampling()
                for path in ("/internal/alive", "/internal/ready"):
                    load = loadavg()
                    r = wrk(path)
                    results[kind][path].append(r)
                    bad = r["non2xx"] + (1 if r["errors"] else 0)
                    runs_log.append(f"| wrk {path} | {run_no} | {NAMES[kind]} | {r['total']} | {WRK_SECONDS} s | "
                                    f"{r['rps']:,.0f} req/s | p99 {r['p99']:.2f} ms | | | non-2xx {r['non2xx']}"
                                    f"{', socket errors ' + r['errors'] if r['errors'] else ''} | {load} |")
                    note(f"wrk {path} run {run_no}: {NAMES[kind]}: {r['rps']:,.0f} req/s, p50 {r['p50']:.2f} ms, "
                         f"p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}{' errors ' + r['errors'] if r['errors'] else ''}")
                    if bad:
                        problems.append(f"wrk {path} run {run_no}: {NAMES[kind]} answered {r['non2xx']} non-2xx"
                                        f"{', socket errors: ' + r['errors'] if r['errors'] else ''}")
                memory[kind]["wrk"].append(max(proc.stop_sampling(), proc.hwm_kb()))
            except Exception as e:  # noqa: BLE001
                problems.append(f"health run {run_no}: {NAMES[kind]}: {e}")
                note(f"health run {run_no}: {NAMES[kind]} FAILED: {e}")
            stop(proc, f"health run {run_no}")
    return results, memory


def startup(kinds: list[str]) -> dict:
    """exec → first 2xx from /internal/ready (polled every 2 ms on a fresh connection), servers up."""
    results = {k: [] for k in kinds}
    results.update({f"{k}-started": [] for k in kinds if k in WARRENS})
    publish(QUEUE, 1, reset=True)
    for i in range(1, READY_RUNS + 1):
        order = kinds if i % 2 else kinds[::-1]
        for kind in order:
            wait_port_free(PORT)
            proc = start(kind, "ingest", f"startup.{i}")
            try:
                if kind in WARRENS:  # the article's app has no startup route
                    t = wait_http_2xx(proc, PORT, "/internal/started", timeout=60, every=0.002)
                    results[f"{kind}-started"].append(t - proc.t_exec)
                t = wait_http_2xx(proc, PORT, "/internal/ready", timeout=60, every=0.002)
                results[kind].append(t - proc.t_exec)
            except Exception as e:  # noqa: BLE001
                problems.append(f"startup run {i}: {NAMES[kind]}: {e}")
            stop(proc, f"startup run {i}")
    for kind in kinds:
        if kind in WARRENS:
            note(f"exec→started: {NAMES[kind]}: " + ", ".join(f"{v * 1000:.0f} ms" for v in results[f"{kind}-started"]))
        note(f"exec→ready: {NAMES[kind]}: " + ", ".join(f"{v * 1000:.0f} ms" for v in results[kind]))
        runs_log.append(f"| exec→ready | 1–{READY_RUNS} | {NAMES[kind]} | | | "
                        + ", ".join(f"{v * 1000:.0f}" for v in results[kind]) + " ms | | | | | |")
    return results


# ---------------------------------------------------------------- profile


def perf_report(data: Path):
    """A function that runs `perf report` on `data` with extra arguments and returns its first
    lines, demangled and tidied."""
    def report(*args: str, limit: int = 25) -> str:
        out = run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", *args], timeout=300)
        lines = []
        for ln in out.splitlines():
            if not ln.strip() or ln.startswith("#"):
                continue
            ln = re.sub(r"(\s+-)+\s*$", "", ln.rstrip())  # empty columns perf pads with
            lines.append(re.sub(r"\s{3,}", "   ", ln.strip()))
        text = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(lines[:limit]),
                              capture_output=True, text=True, timeout=60).stdout.strip()
        return "\n".join(ln if len(ln) <= 160 else ln[:157] + "..." for ln in text.splitlines())
    return report


def profile(watch: BrokerWatch, handler: str, n: int) -> str:
    """One extra Warren drain under `perf record -g`; the top of `perf report`, demangled."""
    data = OUT / f"perf-{handler}.data"
    try:
        r = drain(watch, "warren", handler, n, 0, perf=data)

        report = perf_report(data)
        whole = report("--sort", "comm", "--percent-limit", "1", limit=12)
        threads = report("--pid", str(r["pid"]), "--percentage", "relative", "--sort", "comm", limit=12)
        symbols = report("--pid", str(r["pid"]), "--percentage", "relative", "--sort", "dso,symbol",
                         "--percent-limit", "1", limit=30)
        return (f"{n:,} in {r['secs']:.2f} s ({r['rate']:,.0f}/s) while recording; event-worker used "
                f"{r['cpu']:.2f} s of CPU ({r['cpu'] / r['secs'] * 100:.0f} % of one core).\n\n"
                "The whole machine, by thread name, share of all samples (`swapper` is idle CPU; the broker is "
                "`beam.smp`'s `N_scheduler` threads; event-worker's are the Swift cooperative pool "
                "`…root.default-qos`, NIO's `NIO-ELT-…` and `TP-#…`, and its connection owner threads):\n\n"
                "```\n" + whole + "\n```\n\n"
                "event-worker's own samples by thread:\n\n```\n" + threads + "\n```\n\n"
                "event-worker's top symbols (self time, share of event-worker's samples, ≥ 1 %):\n\n```\n"
                + symbols + "\n```\n")
    except Exception as e:  # noqa: BLE001
        return f"(profile failed: {e})\n"


def profile_wrk(path: str) -> str:
    """wrk on Warren's `path` under `perf record -a -g`."""
    data = OUT / "perf-wrk.data"
    publish(QUEUE, 1, reset=True)
    proc = start("warren", "ingest", "health-perf")
    try:
        wait_http_2xx(proc, PORT, "/internal/ready", timeout=60)
        time.sleep(1)
        recorder = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "499", "-o", str(data)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        cpu0 = proc.cpu_seconds()
        r = wrk(path)
        cpu = proc.cpu_seconds() - cpu0
        recorder.send_signal(2)
        recorder.wait(60)

        report = perf_report(data)
        whole = report("--sort", "comm", "--percent-limit", "1", limit=12)
        symbols = report("--pid", str(proc.pid), "--percentage", "relative", "--sort", "dso,symbol",
                         "--percent-limit", "1", limit=30)
        return (f"`wrk -t1 -c16 -d{WRK_SECONDS}s {path}`: {r['rps']:,.0f} req/s, p99 {r['p99']:.2f} ms while recording; "
                f"event-worker used {cpu:.2f} s of CPU ({cpu / WRK_SECONDS * 100:.0f} % of one core).\n\n"
                "The whole machine, by thread name, share of all samples (`swapper` is idle CPU):\n\n```\n"
                + whole + "\n```\n\n"
                "event-worker's top symbols (self time, share of event-worker's samples, ≥ 1 %):\n\n```\n" + symbols
                + "\n```\n")
    except Exception as e:  # noqa: BLE001
        return f"(profile failed: {e})\n"
    finally:
        stop(proc, "wrk profile")


def finish(watch: BrokerWatch) -> None:
    """Stops the queue watcher and what is still running, and drops the queue (what a failed run may
    have left there are persistent messages on disk)."""
    watch.close()
    common.kill_leftovers()
    try:
        common.services("rabbitmqctl", "-q", "delete_queue", QUEUE)
    except Exception:  # noqa: BLE001
        pass


# ---------------------------------------------------------------- report


def versions() -> list[tuple[str, str]]:
    def first(cmd: list, pattern: str = r"(.+)") -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout + ""
            m = re.search(pattern, out)
            return m.group(1).strip() if m else out.strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"

    def pkg(name: str) -> str:
        return first(["dpkg-query", "-W", "-f", "${Version}", name])

    def py(mod: str) -> str:
        return first([PY, "-c", f"from importlib.metadata import version; print(version('{mod}'))"])
    try:
        src = (OUT / "warren-source.txt").read_text().splitlines()
        changed = [ln.strip() for ln in src[1:]]
        warren = f"`{src[0]}`" + (f", plus uncommitted changes to {', '.join(f'`{c}`' for c in changed)}"
                                  if changed else "")
    except (FileNotFoundError, IndexError):
        warren = "?"
    return [
        ("Warren (event-worker built from)", warren),
        ("Swift", first(["swift", "--version"], r"(Swift version [^\s]+)")),
        ("RabbitMQ", f"{pkg('rabbitmq-server')} (Erlang {pkg('erlang-base')})"),
        ("librabbitmq", pkg("librabbitmq4")),
        ("Redis", first(["redis-server", "--version"], r"v=([\d.]+)")),
        ("PostgreSQL", first(["/usr/lib/postgresql/15/bin/postgres", "--version"], r"([\d.]+)")),
        ("Python", first([PY, "--version"], r"Python ([\d.]+)")),
        ("FastStream", py("faststream")),
        ("aio-pika / aiormq", f"{py('aio-pika')} / {py('aiormq')}"),
        ("uvicorn", py("uvicorn")),
        ("redis-py / asyncpg", f"{py('redis')} / {py('asyncpg')}"),
        ("pydantic", py("pydantic")),
        ("wrk", pkg("wrk")),
    ]


def machine() -> list[tuple[str, str]]:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    return [("cores (nproc)", run(["nproc"])), ("CPU", cpu.group(1) if cpu else "?"),
            ("RAM", f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?"),
            ("kernel", platform.release()),
            ("OS", run(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]))]


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


def mark(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def write_doc(ctx: dict) -> None:
    noop, ingest, web, mem, ready = ctx["noop"], ctx["ingest"], ctx["web"], ctx["mem"], ctx["ready"]

    def med(res: dict, kind: str, key: str = "rate") -> float:
        return median([r[key] for r in res.get(kind, [])])

    def wmed(kind: str, path: str, key: str) -> float:
        return median([r[key] for r in web.get(kind, {}).get(path, [])])
    nw, nc, nf = med(noop, "warren"), med(noop, "c"), med(noop, "faststream")
    iw, i_f = med(ingest, "warren"), med(ingest, "faststream")
    aw, af = wmed("warren", "/internal/alive", "rps"), wmed("faststream", "/internal/alive", "rps")
    ap99 = wmed("warren", "/internal/alive", "p99")
    rw, rf = wmed("warren", "/internal/ready", "rps"), wmed("faststream", "/internal/ready", "rps")
    load_rss_w = max([r["rss_kb"] for r in noop.get("warren", []) + ingest.get("warren", [])] + mem["warren"]["wrk"] or [0])
    load_rss_f = max([r["rss_kb"] for r in noop.get("faststream", []) + ingest.get("faststream", [])]
                     + mem["faststream"]["wrk"] or [0])
    idle_w, idle_f = median(mem["warren"]["idle"]), median(mem["faststream"]["idle"])
    sw, sf = median(ready["warren"]) * 1000, median(ready["faststream"]) * 1000

    def ok(cond: bool, *vals: float) -> bool | None:
        return None if any(v != v for v in vals) else cond  # NaN: not measured
    targets = [
        ("no-op consume ≥ 70 % of C", f"{nw / nc * 100:.1f} %" if nc else "–", ok(nw >= 0.7 * nc, nw, nc)),
        ("no-op consume ≥ 8× FastStream", ratio(nw, nf), ok(nw >= 8 * nf, nw, nf)),
        ("ingest ≥ 10× FastStream", ratio(iw, i_f), ok(iw >= 10 * i_f, iw, i_f)),
        ("/internal/alive ≥ 5× FastStream req/s", ratio(aw, af), ok(aw >= 5 * af, aw, af)),
        ("/internal/alive p99 ≤ 1 ms", f"{ap99:.2f} ms", ok(ap99 <= 1.0, ap99)),
        ("/internal/ready ≥ 10× FastStream req/s", ratio(rw, rf), ok(rw >= 10 * rf, rw, rf)),
        ("RSS under load ≤ 20 MB", f"{load_rss_w / 1024:.1f} MB", ok(load_rss_w <= 20 * 1024, load_rss_w)),
        ("exec → ready ≤ 100 ms", f"{sw:.0f} ms", ok(sw <= 100, sw)),
    ]
    ctx["targets"] = targets

    L: list[str] = []
    a = L.append
    a("# Benchmarks")
    a("")
    a(f"Generated by `bench/run` on {ctx['date']} in {ctx['duration'] / 60:.1f} min "
      f"(`BENCH_N={N}`, `BENCH_INGEST_N={INGEST_N}`, `BENCH_RUNS={RUNS}`). Every figure is the median of "
      f"{RUNS} runs, the contenders alternating run by run, all in the same invocation against the same servers "
      f"(the bench's own instance in `{os.environ['WARREN_STATE_DIR']}`). Re-run with `bench/run`; the chaos "
      "section below is written by `bench/chaos`.")
    a("")
    a("## Machine")
    a("")
    a("| | |")
    a("| --- | --- |")
    for k, v in machine():
        a(f"| {k} | {v} |")
    a(f"| load average (1/5/15 min) | {ctx['load_start']} at the start, {ctx['load_end']} at the end |")
    a("")
    a("The machine is shared with other sessions' builds and test runs, which come and go during a run: "
      "the load average beside each run (below) says how busy it was. On 2 cores, the broker, the worker and "
      "the load generator compete for the same CPUs, so absolute figures are modest; the ratios between "
      "contenders measured side by side are the point.")
    a("")
    a("## Versions")
    a("")
    a("| | |")
    a("| --- | --- |")
    for k, v in ctx["versions"]:
        a(f"| {k} | {v} |")
    a("")
    a("## Results")
    a("")
    a("| measure | Warren | C (librabbitmq) | FastStream 0.7.8 | Warren / C | Warren / FastStream |")
    a("| --- | ---: | ---: | ---: | ---: | ---: |")
    a(f"| no-op consume, {N:,} msgs (msg/s, from exec) | {fmt_rate(nw)} | {fmt_rate(nc)} | {fmt_rate(nf)} | "
      f"{ratio(nw, nc)} | {ratio(nw, nf)} |")
    a(f"| no-op consume, from the first delivery (msg/s) | {fmt_rate(med(noop, 'warren', 'steady'))} | "
      f"{fmt_rate(med(noop, 'c', 'steady'))} | {fmt_rate(med(noop, 'faststream', 'steady'))} | "
      f"{ratio(med(noop, 'warren', 'steady'), med(noop, 'c', 'steady'))} | "
      f"{ratio(med(noop, 'warren', 'steady'), med(noop, 'faststream', 'steady'))} |")
    a(f"| ingest, {INGEST_N:,} events (events/s, from exec) | {fmt_rate(iw)} | | {fmt_rate(i_f)} | | {ratio(iw, i_f)} |")
    for path, (w, f) in (("/internal/alive", (aw, af)), ("/internal/ready", (rw, rf))):
        a(f"| `{path}` req/s (wrk -c16 -d{WRK_SECONDS}s) | {fmt_rate(w)} | | {fmt_rate(f)} | | {ratio(w, f)} |")
        a(f"| `{path}` p50 / p99 latency (ms) | {wmed('warren', path, 'p50'):.2f} / {wmed('warren', path, 'p99'):.2f} | | "
          f"{wmed('faststream', path, 'p50'):.2f} / {wmed('faststream', path, 'p99'):.2f} | | |")
    a(f"| RSS idle (ingest worker, ready, no traffic) | {idle_w / 1024:.1f} MB | | {idle_f / 1024:.1f} MB | | "
      f"{ratio(idle_w, idle_f)} |")
    a(f"| RSS under load (peak VmRSS over drains and wrk) | {load_rss_w / 1024:.1f} MB | "
      f"{max([r['rss_kb'] for r in noop.get('c', [])] or [0]) / 1024:.1f} MB | {load_rss_f / 1024:.1f} MB | | "
      f"{ratio(load_rss_w, load_rss_f)} |")
    for label, key in (("no-op drain", "noop"), ("ingest drain", "ingest")):
        a(f"| … peak RSS in the {label} | {median([r['rss_kb'] for r in ctx[key].get('warren', [])]) / 1024:.1f} MB | "
          + (f"{median([r['rss_kb'] for r in noop.get('c', [])]) / 1024:.1f} MB" if key == "noop" else "")
          + f" | {median([r['rss_kb'] for r in ctx[key].get('faststream', [])]) / 1024:.1f} MB | | |")
    a(f"| … peak RSS under wrk | {median(mem['warren']['wrk']) / 1024:.1f} MB | | "
      f"{median(mem['faststream']['wrk']) / 1024:.1f} MB | | |")
    parts = {k: mem[k].get("parts", [{}])[-1] for k in ("warren", "faststream")}
    if parts["warren"]:
        a(f"| … idle RSS: anonymous / file-backed | {parts['warren']['RssAnon'] / 1024:.1f} / "
          f"{parts['warren']['RssFile'] / 1024:.1f} MB | | {parts['faststream'].get('RssAnon', 0) / 1024:.1f} / "
          f"{parts['faststream'].get('RssFile', 0) / 1024:.1f} MB | | |")
        a(f"| … threads | {parts['warren']['Threads']} | | {parts['faststream'].get('Threads', 0)} | | |")
    a(f"| exec → `/internal/ready` 2xx, servers up (median of {READY_RUNS}) | {sw:.0f} ms | | {sf:.0f} ms | | "
      f"{ratio(sw, sf)} |")
    a(f"| exec → `/internal/started` 200 (Warren only) | {median(ready.get('warren-started', [])) * 1000:.0f} ms | | | | |")
    a("")
    a("## Targets")
    a("")
    a("| target | Warren | |")
    a("| --- | ---: | --- |")
    for name, value, met in targets:
        a(f"| {name} | {value} | {mark(met)} |")
    a("")
    if ctx["profiles"]:
        a("## Where Warren's time goes (targets not met)")
        a("")
        a("Warren's code is not changed by the benchmark; where it misses a target, `bench/run` records one more "
          "Warren run under `perf record -a -g -F 499` (the whole machine, then event-worker's pid alone; "
          "symbols demangled with `swift demangle`).")
        a("")
        for title, text in ctx["profiles"]:
            a(f"### {title}")
            a("")
            a(text)
    if problems:
        a("## Problems seen during this run")
        a("")
        for p in problems:
            a(f"- {p}")
        a("")
    a("## What is measured, and how")
    a("")
    a(METHOD.format(N=N, INGEST_N=INGEST_N, WRK=WRK_SECONDS, READY_RUNS=READY_RUNS, NOOP_PREFETCH=NOOP_PREFETCH,
                    INGEST_PREFETCH=INGEST_PREFETCH))
    a("")
    a("## Every run")
    a("")
    a("| what | run | contender | n | time | rate | first delivery / latency | CPU (of one core) | peak RSS | exit, rows | load avg |")
    a("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    L.extend(runs_log)
    a("")
    if ctx.get("compare"):  # bench/compare's section, as it wrote it
        a(ctx["compare"])
        a("")
    chaos = ctx.get("chaos") or "## Chaos\n\nNot run yet: `bench/chaos` writes this section.\n"
    a(chaos.rstrip())
    a("")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(L))


METHOD = """\
- **Consume throughput (no-op).** `bench/out/publisher -r -t` prefills the durable classic queue
  `bench-events` with {N} persistent ~100-byte events (publisher confirms) and declares it exactly as
  event-worker does (dead-lettering to `bench-events.dlx` → `bench-events.dead`), so all three consume the
  same queue. Then one contender runs, timed **from exec until the broker reports the queue empty with no
  unacknowledged message**; then it is stopped (SIGTERM; the C consumer exits by itself). Contenders:
  `event-worker run` with `HANDLER=noop PREFETCH={NOOP_PREFETCH}` (CONCURRENCY at its default, 16); the bare
  C consumer (`bench/c/consumer.c`: prefetch {NOOP_PREFETCH}, one `multiple` ack every 100); and
  `bench/peers/faststream_noop.py`, a FastStream `RabbitBroker` subscriber with an empty handler,
  `Channel(prefetch_count={NOOP_PREFETCH})`, acked by FastStream after the handler returns
  (`AckPolicy.REJECT_ON_ERROR`, its default). "From the first delivery" leaves out start-up: timed from
  the first poll at which the queue had fewer than N ready messages.
- **How "empty" is seen.** `bench/lib/qwatch.escript` stays connected to the broker node over Erlang
  distribution and reads `messages_ready` and `messages_unacknowledged` from `rabbit_amqqueue:info/2`
  every 10 ms (what `rabbitmqctl list_queues` reads, without booting a CLI, ~0.5 s of CPU, per call). A
  passive `queue.declare` poller was tried first and was not enough: it reports ready messages only, and a
  consumer still holds up to PREFETCH unacknowledged ones when the ready count reaches 0 (for FastStream,
  ~0.2 s of work at the end of a no-op drain). Each line is timestamped on arrival, so the resolution
  is ~10 ms.
- **Ingest throughput.** The same job in both: per event, Redis `GET warren:seen:<id>`; if absent
  `INSERT INTO events (id, type, payload) … ON CONFLICT (id) DO NOTHING`, then Redis `SET … NX EX 86400`;
  ack. Warren: `event-worker` with `HANDLER=ingest` (PREFETCH {INGEST_PREFETCH}, CONCURRENCY 16: its
  defaults). FastStream: `bench/peers/faststream_ingest.py` (pydantic model for the body, `redis.asyncio`,
  an `asyncpg` pool as the article creates it, 10 connections; PREFETCH {INGEST_PREFETCH}, and aio-pika runs
  one task per delivery, so up to {INGEST_PREFETCH} handlers in flight). {INGEST_N} events per run, the table
  truncated and Redis flushed before each run; after each run the harness checks exactly one row per
  event (rows = distinct ids = ids in range = n) and nothing dead-lettered.
- **Health endpoints.** `wrk -t1 -c16 -d{WRK}s --latency` on `/internal/alive`, then `/internal/ready`, of
  each ingest worker, idle (empty queue), ready, with all three servers up. One wrk thread: on 2 cores a
  second one only takes CPU from the server. FastStream's side is the article's code as it stands
  (`bench/peers/article.py`): uvicorn serving `app.as_asgi(...)`; liveness answers 204; readiness does a
  Redis `PING`, `broker.ping(timeout=5)` and a Postgres `SELECT 1` per request. Two deviations, both in
  FastStream's favour: uvicorn's access log is off (the article leaves it on; `FS_ACCESS_LOG=1` restores
  it) and FastStream's per-message log lines are at DEBUG (`FS_MESSAGE_LOG=1` restores INFO), since
  Warren logs neither. Warren's readiness serves the cached result of checks evaluated in the background.
- **Memory.** VmRSS from `/proc/PID/status`, sampled every 50 ms during each drain and each wrk run
  (peak), and once 2 s after the ingest worker turned ready (idle); VmHWM read before each stop.
- **exec → ready.** The harness starts the ingest worker and polls `GET /internal/ready` on a fresh
  connection every 2 ms until the first 2xx (Warren: 200 once started and every check passed; the
  article's app: 204), with RabbitMQ, Redis and Postgres already up; median of {READY_RUNS} runs.
"""


def main() -> int:
    common.exit_on_sigterm()
    t_start = monotonic()
    ctx: dict = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(), "load_start": loadavg(),
                 "versions": versions(), "profiles": []}
    note(f"N={N} (ingest {INGEST_N}), {RUNS} runs, wrk {WRK_SECONDS} s, load {ctx['load_start']}")
    LOGS.mkdir(parents=True, exist_ok=True)
    # Keep the chaos and compare sections of an earlier document.
    if DOC.exists():
        m = re.search(r"^## Chaos\n.*", DOC.read_text(), re.S | re.M)
        ctx["chaos"] = m.group(0) if m else None
        ctx["compare"] = common.compare_section(DOC.read_text())
    watch = BrokerWatch([QUEUE, QUEUE + ".dead"])
    try:
        ctx["noop"] = throughput(watch, "noop", ["c", "warren", "faststream"], N)
        ctx["ingest"] = throughput(watch, "ingest", ["warren", "faststream"], INGEST_N)
        ctx["web"], ctx["mem"] = health(["warren", "faststream"])
        ctx["ready"] = startup(["warren", "faststream"])
        ctx["duration"] = monotonic() - t_start
        ctx["load_end"] = loadavg()
        write_doc(ctx)  # fills ctx["targets"]
        if PROFILE != "0":
            missed = {name for name, _, met in ctx["targets"] if met is False}
            if any("consume" in m for m in missed):
                ctx["profiles"].append((f"no-op consume ({N:,} messages)", profile(watch, "noop", N)))
            if any("ingest" in m for m in missed):
                ctx["profiles"].append((f"ingest ({INGEST_N:,} events)", profile(watch, "ingest", INGEST_N)))
            if any("alive" in m for m in missed):
                ctx["profiles"].append(("`/internal/alive` under wrk", profile_wrk("/internal/alive")))
            if ctx["profiles"]:
                ctx["duration"] = monotonic() - t_start
                write_doc(ctx)
    finally:
        finish(watch)
    print(DOC.read_text().split("## What is measured")[0])
    note(f"wrote {DOC.relative_to(ROOT)} in {(monotonic() - t_start) / 60:.1f} min")
    if problems:
        note(f"{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
