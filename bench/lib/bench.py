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
from common import (LOGS, OUT, PEERS, ROOT, BrokerWatch, Proc, Prober, event_rows, http_get, loadavg, median,
                    monotonic, note, percentile, probe_stats, publish, reset_ingest_state, run, wait_http_2xx,
                    wait_port_free)

common.PROG = "bench/run"

N = common.env_int("BENCH_N", 100_000)
INGEST_N = common.env_int("BENCH_INGEST_N", max(1000, N // 5))
RUNS = common.env_int("BENCH_RUNS", 3)
WRK_SECONDS = common.env_int("BENCH_WRK_SECONDS", 10)
READY_RUNS = common.env_int("BENCH_READY_RUNS", 5)
PORT = common.env_int("BENCH_HEALTH_PORT", 18090)
PROFILE = os.environ.get("BENCH_PROFILE", "auto")  # auto: profile Warren where it misses a target; 0: never
PROBE_MS = common.env_int("BENCH_PROBE_MS", 5)
CALLGRIND = os.environ.get("BENCH_CALLGRIND", "1")  # 0: no callgrind instruction counts
CALLGRIND_N = common.env_int("BENCH_CALLGRIND_N", 50_000)
FREEZE_CAP = 10.0  # seconds a frozen dependency is left frozen at most, waiting for readiness to fail
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
# BENCH_BASELINE's build (bench/run builds it; empty: none): the contender "Warren before".
BASELINE = os.environ.get("BENCH_BASELINE_WORKER", "")
BASELINE_COMMIT = os.environ.get("BENCH_BASELINE_COMMIT", "")
if BASELINE:
    WARRENS["before"] = (BASELINE, {})
    NAMES["before"] = "Warren before"
# Drains with the prober running (kept apart from the throughput and CPU figures, which they would
# tax): {handler: {kind: [drain results, each with "probes"]}}.
PROBED: dict[str, dict[str, list[dict]]] = {}
problems: list[str] = []
findings: list[str] = []  # seen, not failures: e.g. a probe that failed during a drain
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


def drain(watch: BrokerWatch, kind: str, handler: str, n: int, run_no: int, perf: Path | None = None,
          probe: list[str] | None = None) -> dict:
    """Prefills QUEUE with n events, runs the consumer until the broker reports the queue empty
    with nothing unacknowledged, then stops it. Timed from exec. The worker's CPU time is read at
    that moment, before it is stopped (the C consumer, which exits by itself at the end, as the
    zombie it is until reaped). With `probe`, bench/out/prober GETs those paths every PROBE_MS ms
    meanwhile; the probes that started between the first delivery (or the first answer, if later)
    and the end of the drain are kept (of each path, from its first 2xx if that came later: a worker
    still starting is not ready yet)."""
    tag = f"{handler}{'-probe' if probe else ''}{'-perf' if perf else ''}.{run_no}"
    # The C consumer serves no probes: its probed drain measures the machine's floor instead, an idle
    # Warren (consuming an empty queue of its own) probed while the C consumer drains.
    floor = start_floor(tag) if probe and kind == "c" else None
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
    prober = Prober(PORT, probe, LOGS / f"{tag}.{kind}.probes", PROBE_MS) if probe else None
    try:
        t_end = watch.wait_drained(QUEUE, t0, timeout=max(120, n / 200), alive=proc.alive)
        cpu = proc.cpu_seconds()
    finally:
        if recorder is not None:
            recorder.send_signal(2)
            recorder.wait(60)
        probed = prober.stop() if prober is not None else None
    t_first = watch.first_after(QUEUE, t0, lambda r, u: r < n or u > 0) or t0
    hwm = proc.hwm_kb()
    rss = proc.stop_sampling()
    rc = stop(proc, f"{handler}{' probe' if probe else ''} run {run_no}")
    if floor is not None:
        stop(floor, f"{handler} probe run {run_no}: the idle Warren probed while the C consumer drained")
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
    cpu_first = proc.cpu_at(t_first)
    result = {"rate": n / secs, "steady": n / max(1e-9, t_end - t_first), "secs": secs,
              "first": t_first - t0, "rss_kb": rss, "hwm_kb": max(hwm, rss), "rc": rc, "cpu": cpu,
              "cpu_us": cpu / n * 1e6, "cpu_steady_us": max(0.0, cpu - cpu_first) / n * 1e6,
              "pid": proc.pid, "run": run_no}
    extra = ""
    if probed is not None:
        kept = []
        for path in probe:  # from the first delivery, or from the path's first 2xx if later (start-up)
            mine = [p for p in probed["probes"] if p[1] == path]
            ok = [p[0] for p in mine if 200 <= p[2] < 300]
            lo = max(t_first, min(ok)) if ok else t_first
            kept += [p for p in mine if lo <= p[0] <= t_end]
        result["probe_list"] = kept
        result["probes"] = {path: probe_stats(kept, path) for path in probe}
        result["prober_cpu"] = probed["cpu"] / max(1e-9, probed["wall"])
        extra = "; probes " + ", ".join(
            f"{path} n={st['count']} p50 {st['p50']:.2f} p99 {st['p99']:.2f} max {st['max']:.2f} ms"
            f" non-2xx {st['non2xx']}" for path, st in result["probes"].items())
        extra += f"; prober CPU {result['prober_cpu'] * 100:.1f} %"
        for path, st in result["probes"].items():
            if st["non2xx"]:  # a finding about the worker under load, not a failed run
                findings.append(f"{handler} probe run {run_no}: {NAMES[kind]}: {path} answered {st['non2xx']} of "
                                f"{st['count']} probes with no 2xx (statuses {st['statuses']}; 0: no answer) "
                                f"during the drain (log {(LOGS / f'{tag}.{kind}.probes').relative_to(ROOT)})")
    if perf is None:
        cpu_text = f"{cpu / secs * 100:.0f} % · {result['cpu_us']:.2f} µs/msg" if cpu else "–"
        what = handler + (" + probes" if probe else "")
        lat = f"{result['first'] * 1000:.0f} ms"
        if probe:
            lat += "; " + ", ".join(f"{path.rsplit('/', 1)[-1]} p99 {st['p99']:.2f} ms"
                                    for path, st in result["probes"].items())
        runs_log.append(f"| {what} | {run_no} | {NAMES[kind]} | {n} | {secs:.2f} s | {result['rate']:,.0f} msg/s | "
                        f"{lat} | {cpu_text} | {rss / 1024:.1f} MB | {rc} {rows} | {load} |")
    note(f"{handler} run {run_no}: {NAMES[kind]}: {n} in {secs:.2f} s = {result['rate']:,.0f} msg/s "
         f"(first delivery after {result['first'] * 1000:.0f} ms), CPU {result['cpu_us']:.2f} µs/msg, "
         f"max RSS {rss / 1024:.1f} MB, exit {rc}, load {load}{extra}")
    return result


def start_floor(tag: str) -> Proc:
    """An idle event-worker (the work tree's, no-op, on an empty queue of its own), ready on PORT."""
    wait_port_free(PORT)
    cmd, env = worker_cmd("warren", "noop")
    proc = Proc("warren", cmd, {**env, "QUEUE": QUEUE + ".floor"}, LOGS / f"{tag}.floor.log")
    common.wait_http_2xx(proc, PORT, "/internal/ready")
    return proc


def throughput(watch: BrokerWatch, handler: str, kinds: list[str], n: int,
               probe: dict[str, list[str]] | None = None) -> dict[str, list[dict]]:
    """RUNS drains per contender, alternating who goes first. With `probe` ({kind: paths}), each run
    then has one more drain per such contender with the prober on (results in PROBED[handler])."""
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    probed = PROBED.setdefault(handler, {k: [] for k in (probe or {})})
    for run_no in range(1, RUNS + 1):
        order = kinds[run_no - 1:] + kinds[:run_no - 1]  # alternate who goes first
        jobs = [(k, None) for k in order]
        pkinds = [k for k in order if k in (probe or {})]
        jobs += [(k, probe[k]) for k in (pkinds if run_no % 2 else pkinds[::-1])]  # type: ignore[index]
        for kind, paths in jobs:
            try:
                r = drain(watch, kind, handler, n, run_no, probe=paths)
                (probed[kind] if paths else results[kind]).append(r)
            except Exception as e:  # noqa: BLE001 — record and go on
                what = f"{handler}{' probe' if paths else ''} run {run_no}"
                problems.append(f"{what}: {NAMES[kind]}: {e}")
                note(f"{what}: {NAMES[kind]} FAILED: {e}")
                common.kill_leftovers()
    return results


def pooled_probes(handler: str, kind: str, path: str) -> dict:
    """probe_stats over every probed drain of one contender, all probes pooled (percentiles of the
    pool, not medians of per-run percentiles), and the prober's median CPU share."""
    runs = PROBED.get(handler, {}).get(kind, [])
    st = probe_stats([p for r in runs for p in r.get("probe_list", [])], path)
    st["prober_cpu"] = median([r["prober_cpu"] for r in runs if "prober_cpu" in r])
    st["runs"] = len(runs)
    return st


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


def idle_rss(watch: BrokerWatch, kinds: list[str]) -> dict[str, dict]:
    """RSS of each no-op consumer idle: the queue holding one message, its consumer registered at the
    broker and the message taken, then 2 s of nothing; once per contender. (The C consumer is told to
    expect more than the queue holds, and SIGTERMed.)"""
    out: dict[str, dict] = {}
    for kind in kinds:
        publish(QUEUE, 1, reset=True)
        watch.wait_counts(QUEUE, 1)
        if kind == "c":
            proc = Proc(kind, [OUT / "consumer", QUEUE, "1000000"], {}, LOGS / f"idle.{kind}.log")
        else:
            proc = start(kind, "noop", "idle")
        try:
            since = monotonic()
            watch.wait(lambda w: (w.first_after(QUEUE, since, lambda r, u: r == 0) is not None
                                  and (w.latest(QUEUE) or (0, 0, 0, 0))[3] >= 1),
                       timeout=60, what=f"{NAMES[kind]} to consume")
            time.sleep(2)
            out[kind] = {f: proc.status_kb(f) for f in ("VmRSS", "RssAnon", "RssFile", "Threads")}
            runs_log.append(f"| idle RSS (no-op) | 1 | {NAMES[kind]} | | | | | | {out[kind]['VmRSS'] / 1024:.1f} MB "
                            f"(anon {out[kind]['RssAnon'] / 1024:.1f}, file {out[kind]['RssFile'] / 1024:.1f}) | | {loadavg()} |")
            note(f"idle RSS: {NAMES[kind]}: {out[kind]['VmRSS'] / 1024:.1f} MB "
                 f"(anonymous {out[kind]['RssAnon'] / 1024:.1f}, file-backed {out[kind]['RssFile'] / 1024:.1f})")
        except Exception as e:  # noqa: BLE001
            problems.append(f"idle RSS: {NAMES[kind]}: {e}")
        if kind == "c":
            rc = proc.terminate()
            if rc not in (0, -15):
                problems.append(f"idle RSS: {NAMES[kind]} exited with code {rc} (log {proc.log_path})")
        else:
            stop(proc, "idle RSS")
    watch.wait_counts(QUEUE, 0, timeout=30)
    return out


def frozen(kinds: list[str]) -> dict[str, dict[str, list[float]]]:
    """With the ingest worker ready and idle: SIGSTOP Redis (then, separately, Postgres: the postmaster
    and all its children), poll /internal/ready every 10 ms on a fresh connection until it answers 503
    (at most FREEZE_CAP s: inf), SIGCONT, and wait for 200 again. BENCH_READY_RUNS runs per contender.
    Returns {kind: {"redis": [s to 503], "redis-back": [s from SIGCONT to 200], "postgres": ..., ...}}."""
    out = {k: {d: [] for d in ("redis", "redis-back", "postgres", "postgres-back")} for k in kinds}
    for i in range(1, READY_RUNS + 1):
        for kind in (kinds if i % 2 else kinds[::-1]):
            publish(QUEUE, 1, reset=True)
            reset_ingest_state()
            proc = start(kind, "ingest", f"freeze.{i}")
            try:
                wait_http_2xx(proc, PORT, "/internal/ready", timeout=60)
                time.sleep(1)
                for dep in ("redis", "postgres"):
                    t_fail, status, t_back = freeze_once(proc, dep)
                    out[kind][dep].append(t_fail)
                    out[kind][f"{dep}-back"].append(t_back)
                    note(f"freeze run {i}: {NAMES[kind]}: {dep} SIGSTOPped: "
                         + (f"{status} after {t_fail * 1000:.0f} ms" if t_fail != float("inf")
                            else f"still 2xx after {FREEZE_CAP:.0f} s")
                         + f"; 200 again {t_back * 1000:.0f} ms after SIGCONT")
                    runs_log.append(f"| frozen {dep} | {i} | {NAMES[kind]} | | | | "
                                    + (f"{status} after {t_fail * 1000:.0f} ms" if t_fail != float("inf")
                                       else f"2xx after {FREEZE_CAP:.0f} s")
                                    + f"; 200 {t_back * 1000:.0f} ms after SIGCONT | | | | {loadavg()} |")
                    time.sleep(1)
            except Exception as e:  # noqa: BLE001
                problems.append(f"freeze run {i}: {NAMES[kind]}: {e}")
                note(f"freeze run {i}: {NAMES[kind]} FAILED: {e}")
            stop(proc, f"freeze run {i}")
    return out


def freeze_once(proc: Proc, dep: str) -> tuple[float, int, float]:
    """(seconds from SIGSTOP to the first non-2xx answer, or inf; that status; seconds from SIGCONT
    to the first 200). The dependency is always SIGCONTed."""
    t_fail, status = float("inf"), 0
    pids = common.freeze(dep)
    try:
        t0 = monotonic()
        while monotonic() - t0 < FREEZE_CAP:
            st, _ = http_get(PORT, "/internal/ready", timeout=0.5)
            if st and not 200 <= st < 300:
                t_fail, status = monotonic() - t0, st
                break
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while {dep} was frozen:\n{proc.log_tail()}")
            time.sleep(0.01)
    finally:
        common.thaw(pids)
    t1 = monotonic()
    wait_http_2xx(proc, PORT, "/internal/ready", timeout=60, every=0.01)
    return t_fail, status, monotonic() - t1


# ---------------------------------------------------------------- instruction counts


def callgrind(watch: BrokerWatch, kind: str, n: int) -> dict:
    """Instructions per message of a no-op drain under `valgrind --tool=callgrind` (no hardware counters
    needed; deterministic): two drains, of n and of n / 5 messages, so that the difference ÷ the
    difference in messages is what one more message costs, start-up, idling and shutdown (the same in
    both) cancelling out; per function too (self and inclusive Ir per message, the same difference)."""
    small = max(1, n // 5)
    big_run, small_run = callgrind_drain(watch, kind, n), callgrind_drain(watch, kind, small)
    per_msg = (big_run["total"] - small_run["total"]) / (n - small)
    result = {"n": n, "small": small, "ir": big_run["total"], "ir_small": small_run["total"],
              "ir_per_msg": per_msg, "ir_per_msg_whole": big_run["total"] / n, "secs": big_run["secs"]}
    for key in ("self", "inclusive"):
        diff = {fn: (ir - small_run[key].get(fn, 0)) / (n - small) for fn, ir in big_run[key].items()}
        top = sorted(diff.items(), key=lambda kv: -kv[1])[:15]
        lines = [f"{v:10,.0f}  {v / per_msg * 100:5.1f} %  {fn}" for fn, v in top]
        demangled = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(lines),
                                   capture_output=True, text=True, timeout=60).stdout.rstrip()
        result[key] = "\n".join(ln if len(ln) <= 170 else ln[:167] + "..." for ln in demangled.splitlines())
    note(f"callgrind: {NAMES[kind]}: {big_run['total']:,} Ir for {n} messages, {small_run['total']:,} for {small}: "
         f"{per_msg:,.0f} Ir per message ({big_run['total'] / n:,.0f} whole process ÷ {n})")
    return result


def callgrind_drain(watch: BrokerWatch, kind: str, n: int) -> dict:
    """One no-op drain of n messages under callgrind: {"total": Ir, "self": {fn: Ir}, "inclusive": {fn: Ir},
    "secs"}. Valgrind runs a copy without DWARF debug info (`objcopy --strip-debug`; the symbol table
    stays, so functions keep their names): Debian 12's valgrind 3.19 cannot read the DWARF 5 that Swift 6
    emits ("unhandled dwarf2 abbrev form code 0x25 … Possibly corrupted debuginfo file … Giving up"); and
    with bench/c/sigsuspend-shim.c preloaded (valgrind 3.19 dies on libdispatch's sigsuspend otherwise)."""
    binary, _ = WARRENS[kind]
    stripped = OUT / "bin" / f"{Path(binary).name}-nodebug"
    run(["objcopy", "--strip-debug", os.path.realpath(binary), stripped])
    data = OUT / f"callgrind.{kind}.{n}.out"
    data.unlink(missing_ok=True)
    publish(QUEUE, n, reset=True)
    watch.wait_counts(QUEUE, n)
    wait_port_free(PORT)
    _, env = worker_cmd(kind, "noop")
    env["LD_PRELOAD"] = str(OUT / "sigsuspend-shim.so")
    t0 = monotonic()
    proc = Proc(kind, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={data}", stripped, "run"], env,
                LOGS / f"callgrind.{kind}.{n}.log")
    try:
        t_end = watch.wait_drained(QUEUE, t0, timeout=max(300, n / 20), alive=proc.alive)
    except RuntimeError as e:
        proc.terminate(timeout=120)
        log = proc.log_path.read_text(errors="replace")
        why = re.search(r"^(?:--|==)\d+-* (VALGRIND INTERNAL ERROR.*|Valgrind: debuginfo reader.*)$", log, re.M)
        where = re.search(r"^==\d+==\s+at 0x\w+: (\S+) \(in ([^)]+)\)", log.split("sched status:")[-1], re.M)
        raise RuntimeError(f"valgrind: {why.group(1) if why else e}"
                           + (f" (client at {where.group(1)} in {Path(where.group(2)).name})" if where else "")
                           + f"; log {proc.log_path.relative_to(ROOT)}") from None
    rc = proc.terminate(timeout=120)
    if rc != 0:
        problems.append(f"callgrind: {NAMES[kind]} under valgrind exited with code {rc} (log {proc.log_path})")
    text = data.read_text(errors="replace") if data.exists() else ""
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"no totals in {data} (valgrind log: {proc.log_tail()})")
    out = {"total": int(m.group(1)), "secs": t_end - t0}
    for key in ("self", "inclusive"):
        listing = run(["callgrind_annotate", f"--inclusive={'yes' if key == 'inclusive' else 'no'}",
                       "--threshold=100", data], timeout=300)
        fns: dict[str, int] = {}
        for ln in listing.splitlines():
            mm = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.+?)(?:\s+\[[^\]]*\])?\s*$", ln)
            if not mm or "PROGRAM TOTALS" in ln:
                continue
            fn = mm.group(2).split(":", 1)[-1]  # file:function
            if re.search(r"'\d+$", fn):  # a recursion level of callgrind's (async frames), not a function
                continue
            fns[fn] = fns.get(fn, 0) + int(mm.group(1).replace(",", ""))
        out[key] = fns
    return out


def perf_instructions(watch: BrokerWatch, kind: str, n: int) -> dict:
    """The fallback when valgrind fails: `perf stat -e instructions:u` attached to the worker (all its
    threads, those it starts later included) from just after exec until the broker reports n messages
    drained. Raises when the machine has no instruction counter (a VM without a virtual PMU)."""
    data = OUT / f"perf-stat.{kind}.txt"
    data.unlink(missing_ok=True)
    publish(QUEUE, n, reset=True)
    watch.wait_counts(QUEUE, n)
    t0 = monotonic()
    proc = start(kind, "noop", "instructions")
    counter = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions:u", "-p", str(proc.pid), "-o", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        watch.wait_drained(QUEUE, t0, timeout=max(120, n / 200), alive=proc.alive)
    finally:
        counter.send_signal(2)
        counter.wait(30)
        stop(proc, "instruction count")
    text = data.read_text() if data.exists() else ""
    m = re.search(r"^(\d+),[^,]*,instructions", text, re.M)
    if not m:
        raise RuntimeError("perf stat -e instructions:u: "
                           + ("not supported on this machine (no hardware counters: a VM without a virtual PMU)"
                              if "not supported" in text else f"no count in {data}"))
    note(f"perf stat: {NAMES[kind]}: {int(m.group(1)):,} instructions:u, {int(m.group(1)) / n:,.0f} per message")
    return {"n": n, "ir": int(m.group(1)), "ir_per_msg": int(m.group(1)) / n, "perf": True}


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
    return f"{v:,.0f}" if v == v else "–"


def nan(v: float) -> bool:
    return v != v


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and not nan(a) and not nan(b) else "–"


def mark(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def smaps_kb(pid: int) -> dict[str, int]:
    """Resident kB by mapped file name (anonymous mappings under their bracketed names), from smaps."""
    out: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        f = line.split()
        if f and not f[0].endswith(":") and "-" in f[0]:
            name = f[5].rsplit("/", 1)[-1] if len(f) > 5 else "[anon]"
        elif f and f[0] == "Rss:":
            out[name] = out.get(name, 0) + int(f[1])
    return out


def floors() -> dict:
    """What Warren's RSS is made of that is not its own, each idle 2 s after it printed "ready":
    - "libfloor": bench/c/libfloor, the ingest worker's C libraries alone holding its three connections (an
      AMQP consumer on QUEUE, Redis, Postgres; the same URLs), in C: what they cost a worker in any language;
    - "swift": bench/swift-floor, the Swift runtime linked as event-worker links it, doing nothing; "own" is
      its RSS without libc and ld.so (which libfloor's figure has already).
    {name: {VmRSS, RssAnon, RssFile, own}} in kB."""
    out: dict = {}
    publish(QUEUE, 1, reset=True)  # the topology and one event, held unacknowledged, as idle_rss's consumers hold it
    for name, label, cmd in (("libfloor", "the C libraries alone", [OUT / "libfloor", QUEUE, str(INGEST_PREFETCH)]),
                             ("swift", "the Swift runtime alone", [OUT / "swift-floor"])):
        proc = Proc(name, cmd, {}, LOGS / f"idle.{name}-floor.log")
        try:
            deadline = monotonic() + 30
            while "ready" not in proc.log_path.read_text(errors="replace"):
                if not proc.alive() or monotonic() > deadline:
                    raise RuntimeError(f"not ready (log {proc.log_path}): {proc.log_tail(2)}")
                time.sleep(0.05)
            time.sleep(2)
            r = {f: proc.status_kb(f) for f in ("VmRSS", "RssAnon", "RssFile")}
            r["own"] = sum(kb for file, kb in smaps_kb(proc.pid).items()
                           if not file.startswith(("libc.so", "ld-linux")))
            out[name] = r
            runs_log.append(f"| idle RSS ({label}) | 1 | {cmd[0].name} | | | | | | {r['VmRSS'] / 1024:.1f} MB "
                            f"(anon {r['RssAnon'] / 1024:.1f}, file {r['RssFile'] / 1024:.1f}; without libc and ld.so "
                            f"{r['own'] / 1024:.1f}) | | {loadavg()} |")
            note(f"idle RSS: {cmd[0].name}: {r['VmRSS'] / 1024:.1f} MB (without libc and ld.so {r['own'] / 1024:.1f})")
        except Exception as e:  # noqa: BLE001
            problems.append(f"idle RSS of {cmd[0].name}: {e}")
        rc = proc.terminate()
        if rc != 0:
            problems.append(f"{cmd[0].name} exited with code {rc} (log {proc.log_path})")
    return out


def figures(ctx: dict, kind: str) -> dict:
    """One contender's headline figures (medians; NaN where not measured), by measure key."""
    noop, ingest, web, mem = ctx["noop"], ctx["ingest"], ctx["web"], ctx["mem"]
    idle, ready, frz, cg = ctx["idle"], ctx["ready"], ctx["freeze"], ctx.get("callgrind", {})

    def med(res: dict, key: str) -> float:
        return median([r[key] for r in res.get(kind, [])])

    def wmed(path: str, key: str) -> float:
        return median([r[key] for r in web.get(kind, {}).get(path, [])])
    f = {"noop": med(noop, "rate"), "noop_steady": med(noop, "steady"), "noop_cpu": med(noop, "cpu_us"),
         "noop_cpu_steady": med(noop, "cpu_steady_us"), "ingest": med(ingest, "rate"),
         "ingest_cpu": med(ingest, "cpu_us"), "noop_rss": med(noop, "rss_kb") / 1024,
         "ingest_rss": med(ingest, "rss_kb") / 1024}
    for path, key in (("/internal/alive", "alive"), ("/internal/ready", "ready")):
        f[f"{key}_rps"], f[f"{key}_p50"], f[f"{key}_p99"] = (wmed(path, "rps"), wmed(path, "p50"), wmed(path, "p99"))
        for handler in ("noop", "ingest"):
            st = pooled_probes(handler, kind, path)
            for q in ("p50", "p90", "p99", "max", "count", "non2xx", "prober_cpu"):
                f[f"probe_{handler}_{key}_{q}"] = st[q] if st["count"] else float("nan")
    m = mem.get(kind, {})
    f["wrk_rss"] = median(m.get("wrk", [])) / 1024
    f["idle_ingest_rss"] = median(m.get("idle", [])) / 1024
    i = idle.get(kind, {})
    f["idle_noop_rss"] = i.get("VmRSS", float("nan")) / 1024
    f["idle_anon"], f["idle_file"] = i.get("RssAnon", float("nan")) / 1024, i.get("RssFile", float("nan")) / 1024
    f["threads"] = i.get("Threads", float("nan"))
    for name, fl in ctx.get("floors", {}).items():
        for field in ("VmRSS", "RssAnon", "RssFile", "own"):
            f[f"floor_{name}_{field}"] = fl.get(field, float("nan")) / 1024
    peaks = [r["rss_kb"] for r in noop.get(kind, []) + ingest.get(kind, [])] + m.get("wrk", [])
    peaks += [r["rss_kb"] for h in PROBED.values() for r in h.get(kind, [])]
    f["load_rss"] = max(peaks) / 1024 if peaks else float("nan")
    f["ready_ms"] = median(ready.get(kind, [])) * 1000
    f["started_ms"] = median(ready.get(f"{kind}-started", [])) * 1000
    for dep in ("redis", "postgres"):
        f[f"freeze_{dep}"] = median(frz.get(kind, {}).get(dep, []))
        f[f"freeze_{dep}_back"] = median(frz.get(kind, {}).get(f"{dep}-back", []))
    c = cg.get(kind) if isinstance(cg.get(kind), dict) else {}
    f["ir_per_msg"] = c.get("ir_per_msg", float("nan"))
    return f


def targets(w: dict, c: dict, fs: dict) -> list[tuple[str, str, str, float, bool | None]]:
    """(key for the profile, target, how Warren's value is shown, value, met) from one Warren's figures."""
    def ok(cond: bool, *vals: float) -> bool | None:
        return None if any(nan(v) for v in vals) else cond

    def x(a: float, b: float) -> float:
        return a / b if b and not nan(a) and not nan(b) else float("nan")
    cpu, thr = x(w["noop_cpu"], c["noop_cpu"]), x(w["noop"], c["noop"])
    alive, ready, ing = x(w["alive_rps"], fs["alive_rps"]), x(w["ready_rps"], fs["ready_rps"]), x(w["ingest"], fs["ingest"])
    p99, rss = w["probe_noop_ready_p99"], w["load_rss"]
    floor = "" if nan(c["probe_noop_ready_p99"]) else f" (floor {c['probe_noop_ready_p99']:.2f} ms)"
    libs, swift = c.get("floor_libfloor_VmRSS", float("nan")), c.get("floor_swift_own", float("nan"))
    libs = "" if nan(libs) or nan(swift) else f" (floor {libs + swift:.1f} MB: the C libraries {libs:.1f} + the Swift runtime {swift:.1f})"
    fr, fp = w["freeze_redis"], w["freeze_postgres"]
    return [
        ("noop", "CPU per message ≤ 2× the C consumer's (no-op drain, prefetch 1000 both)", f"{cpu:.2f}×", cpu,
         ok(cpu <= 2, cpu)),
        ("noop", "… stretch: ≤ 1.2×", f"{cpu:.2f}×", cpu, ok(cpu <= 1.2, cpu)),
        ("noop", "no-op throughput ≥ 0.85× the C consumer's", f"{thr:.2f}×", thr, ok(thr >= 0.85, thr)),
        ("", "RSS under load ≤ 15 MB", f"{rss:.1f} MB" + libs, rss, ok(rss <= 15, rss)),
        ("", "readiness p99 ≤ 2 ms while a full-speed (no-op) drain runs", f"{p99:.2f} ms" + floor, p99, ok(p99 <= 2, p99)),
        ("", "… stretch: ≤ 1 ms", f"{p99:.2f} ms", p99, ok(p99 <= 1, p99)),
        ("wrk", "`/internal/alive` ≥ 5× FastStream's req/s", f"{alive:.2f}×", alive, ok(alive >= 5, alive)),
        ("wrk", "`/internal/ready` ≥ 10× FastStream's req/s", f"{ready:.2f}×", ready, ok(ready >= 10, ready)),
        ("", "frozen (SIGSTOPped) Redis → readiness 503 within 1 s", secs(fr), fr, ok(fr <= 1, fr)),
        ("", "frozen (SIGSTOPped) Postgres → readiness 503 within 1 s", secs(fp), fp, ok(fp <= 1, fp)),
        ("ingest", "ingest ≥ 10× FastStream (no regression: was 11.9×)", f"{ing:.2f}×", ing, ok(ing >= 10, ing)),
    ]


def secs(v: float) -> str:
    return "–" if nan(v) else (f"> {FREEZE_CAP:.0f} s" if v == float("inf") else f"{v:.2f} s")


def write_doc(ctx: dict) -> None:
    has_before = "before" in ctx["kinds"]
    w, c, fs = figures(ctx, "warren"), figures(ctx, "c"), figures(ctx, "faststream")
    b = figures(ctx, "before") if has_before else None
    ctx["targets"] = targets(w, c, fs)
    before_targets = targets(b, c, fs) if b else None

    L: list[str] = []
    a = L.append
    a("# Benchmarks")
    a("")
    a(f"Generated by `bench/run` on {ctx['date']} in {ctx['duration'] / 60:.1f} min "
      f"(`BENCH_N={N}`, `BENCH_INGEST_N={INGEST_N}`, `BENCH_RUNS={RUNS}`, `BENCH_READY_RUNS={READY_RUNS}`"
      + (f", `BENCH_BASELINE={BASELINE_COMMIT}`" if has_before else ", no baseline") + "). Every figure is the "
      f"median of {RUNS} runs (exec → ready and the frozen dependencies: of {READY_RUNS}), the contenders "
      "alternating run by run, all in the same invocation against the same servers (the bench's own instance in "
      f"`{os.environ['WARREN_STATE_DIR']}`). Re-run with `bench/run`; the chaos section below is written by "
      "`bench/chaos`.")
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
    a("Warren is the work tree's event-worker (\"after\"); \"Warren before\" is in the next table.")
    a("")
    a("| measure | Warren | C (librabbitmq) | FastStream 0.7.8 | Warren / C | Warren / FastStream |")
    a("| --- | ---: | ---: | ---: | ---: | ---: |")

    def row(what: str, key: str, fmt, with_c: bool = True, with_fs: bool = True) -> None:
        wv, cv, fv = w[key], c[key] if with_c else float("nan"), fs[key] if with_fs else float("nan")
        a(f"| {what} | {fmt(wv)} | {fmt(cv) if with_c else ''} | {fmt(fv) if with_fs else ''} | "
          f"{ratio(wv, cv) if with_c else ''} | {ratio(wv, fv) if with_fs else ''} |")

    def mb(v: float) -> str:
        return "–" if nan(v) else f"{v:.1f} MB"

    def us(v: float) -> str:
        return "–" if nan(v) else f"{v:.2f}"

    def ms(v: float) -> str:
        return "–" if nan(v) else f"{v:.0f} ms"
    row(f"no-op consume, {N:,} msgs (msg/s, from exec)", "noop", fmt_rate)
    row("no-op consume, from the first delivery (msg/s)", "noop_steady", fmt_rate)
    row("no-op: CPU per message (µs; process CPU ÷ messages, from exec)", "noop_cpu", us)
    row("… CPU per message from the first delivery (µs)", "noop_cpu_steady", us)
    row(f"ingest, {INGEST_N:,} events (events/s, from exec)", "ingest", fmt_rate, with_c=False)
    row("ingest: CPU per event (µs; process CPU ÷ events)", "ingest_cpu", us, with_c=False)
    for path, key in (("/internal/alive", "alive"), ("/internal/ready", "ready")):
        row(f"`{path}` req/s (wrk -c16 -d{WRK_SECONDS}s, idle worker)", f"{key}_rps", fmt_rate, with_c=False)
        a(f"| `{path}` p50 / p99 latency under wrk (ms) | {us(w[f'{key}_p50'])} / {us(w[f'{key}_p99'])} | | "
          f"{us(fs[f'{key}_p50'])} / {us(fs[f'{key}_p99'])} | | |")

    def probe_cell(f: dict, handler: str, key: str) -> str:
        if nan(f[f"probe_{handler}_{key}_count"]):
            return ""
        return (" / ".join(f"{f[f'probe_{handler}_{key}_{q}']:.2f}" for q in ("p50", "p90", "p99", "max"))
                + f" ({f[f'probe_{handler}_{key}_count']:,.0f}, {f[f'probe_{handler}_{key}_non2xx']:.0f} non-2xx)")
    for handler, label in (("noop", "no-op drain"), ("ingest", "ingest drain")):
        for key in ("ready", "alive"):
            ws, cs, fss = probe_cell(w, handler, key), probe_cell(c, handler, key), probe_cell(fs, handler, key)
            p99 = f"probe_{handler}_{key}_p99"
            a(f"| `/internal/{key}` probed during the {label}: p50 / p90 / p99 / max ms (probes, non-2xx) | {ws} | "
              f"{cs} | {fss} | {ratio(w[p99], c[p99]) if cs else ''} | {ratio(w[p99], fs[p99]) if fss else ''} |")
    if not nan(c["probe_noop_ready_p99"]):
        a("| … C column: the machine's floor, an idle Warren probed while the C consumer drains (no probes of its own) | | | | | |")
    pc = [f[f"probe_{h}_ready_prober_cpu"] for f in (w, fs) for h in ("noop", "ingest")]
    pc = [v for v in pc if not nan(v)]
    if pc:
        a(f"| … the prober's own CPU (share of one core, median of the probed drains) | "
          f"{max(pc) * 100:.1f} % at most | | | | |")
    row("RSS idle, no-op consumer (consumer registered, 2 s idle)", "idle_noop_rss", mb)
    row("RSS idle, ingest worker (ready, 2 s idle)", "idle_ingest_rss", mb, with_c=False)
    row("peak RSS in the no-op drain", "noop_rss", mb)
    row("peak RSS in the ingest drain", "ingest_rss", mb, with_c=False)
    row("peak RSS under wrk", "wrk_rss", mb, with_c=False)
    row("RSS under load (peak VmRSS over every drain and wrk)", "load_rss", mb)

    def two(f: dict) -> str:
        return "" if nan(f["idle_anon"]) else f"{f['idle_anon']:.1f} / {f['idle_file']:.1f} MB, {f['threads']:.0f}"
    a(f"| … idle no-op RSS: anonymous / file-backed, threads | {two(w)} | {two(c)} | {two(fs)} | | |")
    if not nan(c.get("floor_libfloor_VmRSS", float("nan"))):
        a(f"| … the C libraries alone: `bench/c/libfloor` holding the ingest worker's connections (an AMQP consumer, "
          f"Redis, Postgres; same URLs), in C, idle; anonymous / file-backed | | {c['floor_libfloor_VmRSS']:.1f} MB "
          f"({c['floor_libfloor_RssAnon']:.1f} / {c['floor_libfloor_RssFile']:.1f}) | | | |")
    if not nan(c.get("floor_swift_VmRSS", float("nan"))):
        a(f"| … the Swift runtime alone: `bench/swift-floor`, linked as event-worker is, doing nothing; without libc and "
          f"ld.so (counted above) | | {c['floor_swift_VmRSS']:.1f} MB; {c['floor_swift_own']:.1f} MB | | | |")
    row(f"exec → `/internal/ready` 2xx, servers up (median of {READY_RUNS})", "ready_ms", ms, with_c=False)
    row("exec → `/internal/started` 200 (Warren only)", "started_ms", ms, with_c=False, with_fs=False)
    for dep in ("redis", "postgres"):
        a(f"| {dep.capitalize()} SIGSTOPped → `/internal/ready` 503 (s); 200 again after SIGCONT (s) | "
          f"{secs(w[f'freeze_{dep}'])}; {secs(w[f'freeze_{dep}_back'])} | | | | |")
    if not nan(w["ir_per_msg"]):
        a(f"| no-op: instructions per message ({instr_label(ctx)}) | {w['ir_per_msg']:,.0f} | | | | |")
    a("")
    if b is not None:
        a("## Before / after")
        a("")
        a(f"\"before\" is event-worker (release) built from `{ctx['baseline_subject']}`; \"after\" is the work "
          "tree's build (Versions, above). Both ran in this invocation, alternating with the other contenders."
          + (" The work tree's Sources and Package.* were the same as the baseline's, so both are the same "
             "binary: their differences here are the noise of this machine." if ctx.get("baseline_same") else ""))
        a("")
        a("| measure | before | after | after / before |")
        a("| --- | ---: | ---: | ---: |")

        def ba(what: str, key: str, fmt) -> None:
            a(f"| {what} | {fmt(b[key])} | {fmt(w[key])} | {ratio(w[key], b[key])} |")
        ba(f"no-op consume, {N:,} msgs (msg/s)", "noop", fmt_rate)
        ba("no-op: CPU per message (µs)", "noop_cpu", us)
        ba("… from the first delivery (µs)", "noop_cpu_steady", us)
        a(f"| no-op: CPU per message / the C consumer's | {ratio(b['noop_cpu'], c['noop_cpu'])} | "
          f"{ratio(w['noop_cpu'], c['noop_cpu'])} | |")
        a(f"| no-op: throughput / the C consumer's | {ratio(b['noop'], c['noop'])} | {ratio(w['noop'], c['noop'])} | |")
        ba(f"ingest, {INGEST_N:,} events (events/s)", "ingest", fmt_rate)
        ba("ingest: CPU per event (µs)", "ingest_cpu", us)
        a(f"| ingest / FastStream | {ratio(b['ingest'], fs['ingest'])} | {ratio(w['ingest'], fs['ingest'])} | |")
        ba("`/internal/alive` req/s (wrk)", "alive_rps", fmt_rate)
        ba("`/internal/ready` req/s (wrk)", "ready_rps", fmt_rate)
        for handler, label in (("noop", "no-op"), ("ingest", "ingest")):
            ba(f"`/internal/ready` p99 during the {label} drain (ms)", f"probe_{handler}_ready_p99", us)
            ba(f"`/internal/ready` max during the {label} drain (ms)", f"probe_{handler}_ready_max", us)
        ba("RSS idle, no-op", "idle_noop_rss", mb)
        ba("RSS idle, ingest", "idle_ingest_rss", mb)
        ba("RSS under load (peak)", "load_rss", mb)
        ba("exec → `/internal/ready` 2xx", "ready_ms", ms)
        for dep in ("redis", "postgres"):
            a(f"| {dep.capitalize()} SIGSTOPped → 503 | {secs(b[f'freeze_{dep}'])} | {secs(w[f'freeze_{dep}'])} | "
              f"{ratio(w[f'freeze_{dep}'], b[f'freeze_{dep}']) if w[f'freeze_{dep}'] != float('inf') else '–'} |")
        ba(f"no-op: instructions per message ({instr_label(ctx)})", "ir_per_msg", fmt_rate)
        a("")
    a("## Targets")
    a("")
    a("Met or not from the work tree's (\"after\") figures; each a ratio measured side by side in this run. "
      "What was changed between \"before\" and \"after\", and the profiles that found each change: "
      "[`PERFORMANCE.md`](PERFORMANCE.md); RSS by build flags: [`FOOTPRINT.md`](FOOTPRINT.md).")
    a("")
    a("| target | " + ("before | " if before_targets else "") + "after | |")
    a("| --- | " + ("---: | " if before_targets else "") + "---: | --- |")
    for i, (_, name, shown, _, met) in enumerate(ctx["targets"]):
        bt = f"{before_targets[i][2]} | " if before_targets else ""
        a(f"| {name} | {bt}{shown} | {mark(met)} |")
    a("")
    if ctx.get("callgrind"):
        a("## Instructions per message")
        a("")
        a(callgrind_text(ctx))
    if ctx["profiles"]:
        a("## Where Warren's time goes (targets not met)")
        a("")
        a("Where Warren misses a target, `bench/run` records one more Warren run under `perf record -a -g -F 499` "
          "(the whole machine, then event-worker's pid alone; symbols demangled with `swift demangle`).")
        a("")
        for title, text in ctx["profiles"]:
            a(f"### {title}")
            a("")
            a(text)
    if findings:
        a("## Seen during this run (findings, not failures)")
        a("")
        for f in findings:
            a(f"- {f}")
        a("")
    if problems:
        a("## Problems seen during this run")
        a("")
        for p in problems:
            a(f"- {p}")
        a("")
    a("## What is measured, and how")
    a("")
    a(METHOD.format(N=N, INGEST_N=INGEST_N, WRK=WRK_SECONDS, READY_RUNS=READY_RUNS, NOOP_PREFETCH=NOOP_PREFETCH,
                    INGEST_PREFETCH=INGEST_PREFETCH, PROBE_MS=PROBE_MS, CG_N=CALLGRIND_N, CAP=FREEZE_CAP))
    a("")
    a("## Every run")
    a("")
    a("| what | run | contender | n | time | rate | first delivery / latency | CPU (of one core) · per message | peak RSS | exit, rows | load avg |")
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


def instr_label(ctx: dict) -> str:
    cg = [v for v in ctx.get("callgrind", {}).values() if isinstance(v, dict)]
    if any(v.get("perf") for v in cg):
        return f"perf stat instructions:u, {N:,} msgs"
    return f"callgrind Ir, marginal: {CALLGRIND_N:,} vs {CALLGRIND_N // 5:,} msgs"


def callgrind_text(ctx: dict) -> str:
    cg, failed = ctx["callgrind"], ctx.get("callgrind_failed", [])
    parts = []
    if failed:
        parts.append("valgrind failed on the Swift binary — " + "; ".join(failed) + ". The fallback is "
                     f"`perf stat -e instructions:u` attached to the worker over a normal no-op drain of {N:,} "
                     "messages (user-space instructions from just after exec to the drained queue ÷ messages; "
                     "no per-function breakdown: the perf profile below has that, by time).\n")
    else:
        parts.append(f"Two more no-op drains per build, of {CALLGRIND_N:,} and of {CALLGRIND_N // 5:,} messages, "
                     f"event-worker (`HANDLER=noop PREFETCH={NOOP_PREFETCH}`) under `valgrind --tool=callgrind`: "
                     "instructions executed (Ir), deterministic, unlike time on a shared machine (valgrind runs the "
                     "threads one at a time, ~50× slower). Each total is the whole process from exec to exit after "
                     "SIGTERM; **Ir per message is the difference of the two totals ÷ the difference in messages**, "
                     "so start-up, idling and shutdown, the same in both, cancel out (the whole-process total ÷ "
                     "messages is given beside it). The functions are ranked the same way: what each adds per "
                     "message (self: its own instructions; inclusive: with all it calls; share of the per-message "
                     "Ir). Names demangled with `swift demangle --simplified`. The binary's DWARF debug info is "
                     "stripped (valgrind 3.19 cannot read Swift 6's DWARF 5; the symbol table stays), and "
                     "`bench/c/sigsuspend-shim.c` is preloaded (valgrind 3.19 dies on libdispatch's `sigsuspend`).\n")
    for kind, r in cg.items():
        title = NAMES[kind] + (f" (`{ctx['baseline_subject'][:60]}`)" if kind == "before" else " (work tree)")
        if not isinstance(r, dict):
            parts.append(f"- {title}: no count: {r}")
            continue
        parts.append(f"### {title}\n")
        unit = "instructions" if r.get("perf") else "Ir"
        if r.get("perf"):
            parts.append(f"{r['ir']:,} {unit} for {r['n']:,} messages: **{r['ir_per_msg']:,.0f} {unit} per message**.\n")
            continue
        parts.append(f"{r['ir']:,} Ir for {r['n']:,} messages ({r['secs']:.1f} s under valgrind), {r['ir_small']:,} "
                     f"for {r['small']:,}: **{r['ir_per_msg']:,.0f} Ir per message** (whole process ÷ "
                     f"{r['n']:,}: {r['ir_per_msg_whole']:,.0f}).\n")
        parts.append("What each function adds per message, self (Ir per message, share, function):\n\n```\n"
                     + r["self"] + "\n```\n")
        parts.append("… inclusive:\n\n```\n" + r["inclusive"] + "\n```\n")
    return "\n".join(parts) + "\n"


METHOD = """\
- **Consume throughput (no-op).** `bench/out/publisher -r -t` prefills the durable classic queue
  `bench-events` with {N} persistent ~100-byte events (publisher confirms) and declares it exactly as
  event-worker does (dead-lettering to `bench-events.dlx` → `bench-events.dead`), so all contenders consume the
  same queue. Then one contender runs, timed **from exec until the broker reports the queue empty with no
  unacknowledged message**; then it is stopped (SIGTERM; the C consumer exits by itself). Contenders:
  `event-worker run` with `HANDLER=noop PREFETCH={NOOP_PREFETCH}` (CONCURRENCY at its default, 16), the work
  tree's build ("Warren") and BENCH_BASELINE's ("Warren before"); the bare
  C consumer (`bench/c/consumer.c`: prefetch {NOOP_PREFETCH}, one `multiple` ack every 100); and
  `bench/peers/faststream_noop.py`, a FastStream `RabbitBroker` subscriber with an empty handler,
  `Channel(prefetch_count={NOOP_PREFETCH})`, acked by FastStream after the handler returns
  (`AckPolicy.REJECT_ON_ERROR`, its default). "From the first delivery" leaves out start-up: timed from
  the first poll at which the queue had fewer than N ready messages.
- **CPU per message.** The contender's process CPU time (user + system, all threads, exited ones included:
  the process's CPU-time clock, `clock_gettime` on its CPUCLOCK, which is what `/proc/PID/stat`'s utime + stime
  count, in ns rather than 10 ms ticks) read the moment the broker reports the queue drained, before the
  process is stopped (the C consumer, which exits by itself, is read as the unreaped zombie it is then),
  ÷ messages. It includes start-up (connecting, declaring); "from the first delivery" subtracts the CPU time
  sampled (every 50 ms) at the first delivery. Same for all contenders, in the no-op and the ingest drains.
- **How "empty" is seen.** `bench/lib/qwatch.escript` stays connected to the broker node over Erlang
  distribution and reads `messages_ready` and `messages_unacknowledged` from `rabbit_amqqueue:info/2`
  every 10 ms (what `rabbitmqctl list_queues` reads, without booting a CLI per call). Each line is timestamped
  on arrival, so the resolution is ~10 ms.
- **Ingest throughput.** The same job in both: per event, Redis `GET warren:seen:<id>`; if absent
  `INSERT INTO events (id, type, payload) … ON CONFLICT (id) DO NOTHING`, then Redis `SET … NX EX 86400`;
  ack. Warren: `event-worker` with `HANDLER=ingest` (PREFETCH {INGEST_PREFETCH}, CONCURRENCY 16: its
  defaults). FastStream: `bench/peers/faststream_ingest.py` (pydantic model for the body, `redis.asyncio`,
  an `asyncpg` pool as the article creates it, 10 connections; PREFETCH {INGEST_PREFETCH}, and aio-pika runs
  one task per delivery, so up to {INGEST_PREFETCH} handlers in flight). {INGEST_N} events per run, the table
  truncated and Redis flushed before each run; after each run the harness checks exactly one row per
  event (rows = distinct ids = ids in range = n) and nothing dead-lettered.
- **Probes during a drain.** In each run, after the throughput drains, one more drain per contender with health
  endpoints (no-op: the Warren builds; ingest: the Warren builds and the article's FastStream app, which serves
  both routes while it ingests), with `bench/out/prober` (`bench/c/prober.c`) running: every {PROBE_MS} ms a GET
  of `/internal/ready`, then one of `/internal/alive`, each on a fresh TCP connection as the kubelet does
  (`Connection: close`, 1 s timeout), latency from before `connect()` to the last byte of the response. The
  probes that started between the first delivery (or the first answer, if later) and the end of the drain
  count; percentiles are of all of them pooled over the runs (nearest rank). Readiness goes first, so it
  always meets an event loop that has slept for {PROBE_MS} ms, as a kubelet's probe every few seconds does;
  liveness, right after it, meets a loop that has just run and comes out faster than it would alone (the
  second probe of a pair is, whichever path it is: `PERFORMANCE.md`). These drains are kept out of the
  throughput and CPU figures (the probes cost the worker CPU the C consumer does not pay). The prober is C, not
  a thread of the Python harness, whose interpreter (its GIL shared with the queue watcher and the RSS sampler)
  would add stalls of its own inside the latencies and more CPU on 2 cores; its own CPU share is reported.
  The C consumer has no health endpoints: in its probed no-op drain the prober probes an idle Warren (the work
  tree's, consuming an empty queue of its own) while the C consumer drains, which is the floor this machine
  sets for a probe's latency while a drain at the C consumer's speed loads both cores (the C column).
- **Health endpoints.** `wrk -t1 -c16 -d{WRK}s --latency` on `/internal/alive`, then `/internal/ready`, of
  each ingest worker, idle (empty queue), ready, with all three servers up. One wrk thread: on 2 cores a
  second one only takes CPU from the server. FastStream's side is the article's code as it stands
  (`bench/peers/article.py`): uvicorn serving `app.as_asgi(...)`; liveness answers 204; readiness does a
  Redis `PING`, `broker.ping(timeout=5)` and a Postgres `SELECT 1` per request. Two deviations, both in
  FastStream's favour: uvicorn's access log is off (the article leaves it on; `FS_ACCESS_LOG=1` restores
  it) and FastStream's per-message log lines are at DEBUG (`FS_MESSAGE_LOG=1` restores INFO), since
  Warren logs neither. Warren's readiness serves the cached result of checks evaluated in the background.
- **Memory.** VmRSS from `/proc/PID/status`, sampled every 50 ms during each drain and each wrk run
  (peak; "under load" is the highest of them all); idle: the no-op consumers once each, 2 s after the broker
  shows their consumer registered and the one queued message taken (the C consumer told to expect more),
  and the ingest workers 2 s after `/internal/ready` first answered 2xx. The C libraries alone:
  `bench/c/libfloor`, a C program with the ingest worker's C libraries (librabbitmq, hiredis, libpq and what
  Debian links them with) holding its connections (a consumer on the bench's queue, Redis, Postgres: the same
  URLs, `sslmode=disable` as event-worker's default), 2 s after they all answered; what these libraries cost a
  worker in any language, and so the part of Warren's RSS that is not Swift's. The Swift runtime alone:
  `bench/swift-floor`, a Swift program linked as event-worker is (`-static-stdlib`, lld, DT_RELR, no exported
  symbols) that does nothing, 2 s after it started; without libc and ld.so (from smaps), which the C
  libraries' figure has already. Their sum is the floor beside the RSS target.
- **exec → ready.** The harness starts the ingest worker and polls `GET /internal/ready` on a fresh
  connection every 2 ms until the first 2xx (Warren: 200 once started and every check passed; the
  article's app: 204), with RabbitMQ, Redis and Postgres already up; median of {READY_RUNS} runs.
- **Frozen dependency.** The Warren ingest workers, ready and idle: the bench instance's `redis-server`
  SIGSTOPped (`scripts/services pid redis`), `/internal/ready` polled every 10 ms on a fresh connection until it
  answers non-2xx (at most {CAP:.0f} s: "> {CAP:.0f} s"), SIGCONT (always, in a `finally`), then polled until 200
  again; then the same with PostgreSQL: the postmaster and every child of it (backends and auxiliary
  processes: stopping the postmaster alone leaves the established connections answering). Median of
  {READY_RUNS} runs. FastStream's article readiness is not run here: its Redis and Postgres calls have no
  timeout, so its probe would hang rather than fail.
- **Instructions.** See its section: one no-op drain of {CG_N} messages per Warren build under
  `valgrind --tool=callgrind`, or where valgrind fails, `perf stat -e instructions:u` over a drain of {N}.
"""


def main() -> int:
    common.exit_on_sigterm()
    t_start = monotonic()
    ctx: dict = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(), "load_start": loadavg(),
                 "versions": versions(), "profiles": [], "callgrind": {}}
    warrens = ["warren", "before"] if BASELINE else ["warren"]
    ctx["kinds"] = warrens
    if BASELINE:
        ctx["baseline_subject"] = run(["git", "-C", ROOT, "log", "-1", "--format=%h %s", BASELINE_COMMIT])[:72]
        if os.path.realpath(BASELINE) == os.path.realpath(WORKER):
            ctx["baseline_same"] = True
    note(f"N={N} (ingest {INGEST_N}), {RUNS} runs, wrk {WRK_SECONDS} s, baseline {BASELINE_COMMIT or 'none'}, "
         f"load {ctx['load_start']}")
    LOGS.mkdir(parents=True, exist_ok=True)
    # Keep the chaos and compare sections of an earlier document.
    if DOC.exists():
        m = re.search(r"^## Chaos\n.*", DOC.read_text(), re.S | re.M)
        ctx["chaos"] = m.group(0) if m else None
        ctx["compare"] = common.compare_section(DOC.read_text())
    watch = BrokerWatch([QUEUE, QUEUE + ".dead"])
    both = ["/internal/ready", "/internal/alive"]
    try:
        if CALLGRIND != "0":  # first: it tells early whether valgrind works on the Swift binary at all
            for kind in warrens:
                try:
                    ctx["callgrind"][kind] = callgrind(watch, kind, CALLGRIND_N)
                except Exception as e:  # noqa: BLE001 — a finding (valgrind and Swift), not a failed run
                    ctx.setdefault("callgrind_failed", []).append(f"{NAMES[kind]}: {e}")
                    note(f"callgrind: {NAMES[kind]} FAILED: {e}; falling back to perf stat -e instructions")
                    common.kill_leftovers()
                    try:
                        ctx["callgrind"][kind] = perf_instructions(watch, kind, N)
                    except Exception as e2:  # noqa: BLE001 — no counter either: a finding too
                        note(f"instruction count: {NAMES[kind]}: {e2}")
                        ctx["callgrind"][kind] = str(e2)
        ctx["noop"] = throughput(watch, "noop", ["c", *warrens, "faststream"], N,
                                 probe={k: both for k in ["c", *warrens]})
        ctx["ingest"] = throughput(watch, "ingest", [*warrens, "faststream"], INGEST_N,
                                   probe={k: both for k in [*warrens, "faststream"]})
        ctx["idle"] = idle_rss(watch, ["c", *warrens, "faststream"])
        ctx["floors"] = floors()
        ctx["web"], ctx["mem"] = health([*warrens, "faststream"])
        ctx["ready"] = startup([*warrens, "faststream"])
        ctx["freeze"] = frozen(warrens)
        ctx["duration"] = monotonic() - t_start
        ctx["load_end"] = loadavg()
        write_doc(ctx)  # fills ctx["targets"]
        if PROFILE != "0":
            missed = {key for key, _, _, _, met in ctx["targets"] if met is False and key}
            if "noop" in missed:
                ctx["profiles"].append((f"no-op consume ({N:,} messages)", profile(watch, "noop", N)))
            if "ingest" in missed:
                ctx["profiles"].append((f"ingest ({INGEST_N:,} events)", profile(watch, "ingest", INGEST_N)))
            if "wrk" in missed:
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
