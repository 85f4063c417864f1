"""bench/compare's measurements: event-worker with tracing off before/after, and over TLS vs plain;
writes its section of docs/BENCHMARKS.md.

Started by bench/compare (after bench/lib/setup.sh, which exports AMQP_URL, AMQPS_URL, REDIS_URL,
REDISS_URL when scripts/services has it, DATABASE_URL, WARREN_TLS_DIR, WORKER), with
BENCH_BEFORE_WORKERS: one "<commit>\\t<event-worker binary>" line per commit to compare HEAD with.
The drains and exec → ready runs are bench/run's own (bench/lib/bench.py), with the contenders
registered in bench.WARRENS.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
from urllib.parse import urlsplit

import bench
import common
from common import OUT, ROOT, BrokerWatch, loadavg, median, monotonic, note, run

common.PROG = "bench/compare"
bench.RUNS = common.env_int("BENCH_RUNS", 5)
N = bench.N
DOC = bench.DOC


def git(*args: str) -> str:
    return run(["git", "-C", ROOT, *args])


def tls_urls() -> tuple[dict, list[str], list[str]]:
    """The TLS contender's environment, what goes over TLS, and what stays plain."""
    db = os.environ["DATABASE_URL"]
    env = {"AMQP_URL": os.environ["AMQPS_URL"],
           "DATABASE_URL": f"{db}{'&' if '?' in db else '?'}sslmode=verify-full"
                           f"&sslrootcert={os.environ['WARREN_TLS_DIR']}/ca.pem"}
    tls = ["AMQP (`amqps://`, client certificate)", "PostgreSQL (`sslmode=verify-full`)"]
    plain = []
    if os.environ.get("REDISS_URL"):
        env["REDIS_URL"] = os.environ["REDISS_URL"]
        tls.append("Redis (`rediss://`)")
    else:
        plain.append("Redis (`redis://`: this branch's scripts/services has no `REDISS_URL` yet)")
    # A server started by an older scripts/services may lack its TLS listener: restart that one.
    for name, var in (("rabbitmq", "AMQP_URL"), ("redis", "REDIS_URL")):
        port = urlsplit(env.get(var, "")).port
        if port and common.port_free(port):
            note(f"{name} does not listen on its TLS port {port} (started by an older scripts/services?): restarting it")
            common.services("restart", name)
    return env, tls, plain


def per_message_us(r: dict) -> float:
    return r["cpu"] / N * 1e6


def stats(results: list[dict]) -> dict:
    """Medians over the runs of one contender; each run's rate and CPU per message by run number."""
    rates = [r["rate"] for r in results]
    cpu = [per_message_us(r) for r in results]
    return {"rate": median(rates), "steady": median([r["steady"] for r in results]), "cpu_us": median(cpu),
            "rss_mb": median([r["rss_kb"] for r in results]) / 1024, "rates": rates, "cpus": cpu,
            "by_run": {r["run"]: {"rate": r["rate"], "cpu_us": per_message_us(r)} for r in results}}


def paired(st: dict[str, dict], a: str, b: str, key: str) -> tuple[float, float, int] | None:
    """Lowest and highest a / b run by run. The contenders of a run go back to back, so this ratio leaves
    out most of what the shared machine's load did between runs. None without two runs both have."""
    runs = sorted(set(st[a]["by_run"]) & set(st[b]["by_run"]))
    if len(runs) < 2:
        return None
    r = [st[a]["by_run"][n][key] / st[b]["by_run"][n][key] for n in runs]
    return min(r), max(r), len(r)


def verdict(rng: tuple[float, float, int] | None, same: str, differs: str) -> str:
    """`same` if the run-by-run ratios fall on both sides of 1, else `differs`."""
    if rng is None:
        return "; a run failed, so there is no run-by-run ratio to judge it by."
    lo, hi, n = rng
    if lo <= 1 <= hi:
        return f"; run by run the ratio went from {lo:.2f}× to {hi:.2f}×, both sides of 1: {same}"
    return f"; run by run it was {'above' if lo > 1 else 'below'} 1 in all {n} runs ({lo:.2f}×–{hi:.2f}×): {differs}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}×" if b and a == a and b == b else "–"


def rows(kinds: list[str], st: dict[str, dict], ratios: list[tuple[str, str]], label: str) -> list[str]:
    """Markdown table: one column per contender, then one per (numerator, denominator) ratio."""
    names = [bench.NAMES[k] for k in kinds] + [f"{bench.NAMES[a]} / {bench.NAMES[b]}" for a, b in ratios]
    out = [f"| {label} | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]

    def line(what: str, key: str, fmt: str) -> None:
        vals = [st[k][key] for k in kinds]
        out.append(f"| {what} | " + " | ".join(format(v, fmt) for v in vals) + " | "
                   + " | ".join(ratio(st[a][key], st[b][key]) for a, b in ratios) + " |")
    line(f"no-op drain, {N:,} msgs (msg/s, from exec)", "rate", ",.0f")
    line("… from the first delivery (msg/s)", "steady", ",.0f")
    line("worker CPU per message (µs)", "cpu_us", ".2f")
    line("peak RSS during the drain (MB)", "rss_mb", ".1f")
    if "bin_mb" in st[kinds[0]]:
        line("event-worker binary (MB)", "bin_mb", ".1f")
    if any("anon_mb" in st[k] for k in kinds):
        def mem(k: str, key: str) -> float:
            return st[k].get(key, float("nan"))
        out.append("| idle RSS, anonymous + file-backed (MB) | "
                   + " | ".join(f"{mem(k, 'anon_mb'):.1f} + {mem(k, 'file_mb'):.1f}" for k in kinds) + " | "
                   + " | ".join(f"{ratio(mem(a, 'anon_mb'), mem(b, 'anon_mb'))} + "
                                f"{ratio(mem(a, 'file_mb'), mem(b, 'file_mb'))}" for a, b in ratios) + " |")
    out.append("| every run: msg/s | " + " | ".join(", ".join(f"{v:,.0f}" for v in st[k]["rates"]) for k in kinds)
               + " |" + " |" * len(ratios))
    out.append("| every run: CPU µs/msg | " + " | ".join(", ".join(f"{v:.2f}" for v in st[k]["cpus"]) for k in kinds)
               + " |" + " |" * len(ratios))
    return out


def pct(r: float) -> str:
    return f"{abs(r - 1) * 100:.1f} % {'more' if r > 1 else 'less'}"


def tracing_sentence(st: dict[str, dict], base: str, commits: int) -> str:
    r_cpu, r_rate = st["after"]["cpu_us"] / st[base]["cpu_us"], st["after"]["rate"] / st[base]["rate"]
    text = (f"With tracing off, HEAD uses {pct(r_cpu)} CPU per message than `{base}` and drains at {r_rate:.2f}× "
            "its rate" + verdict(paired(st, "after", base, "cpu_us"), "no cost measurable at this noise.",
                                 f"HEAD differs from `{base}` by {commits} commits, tracing among them, so "
                                 + ("this is their cost together, not tracing's alone." if r_cpu > 1 else
                                    "the other changes more than make up for whatever tracing adds.")))
    if "no-otlp" not in st:
        return text
    a, b = st["after"], st["no-otlp"]
    o_cpu, o_rss = a["cpu_us"] / b["cpu_us"], a["rss_mb"] - b["rss_mb"]
    return text + (f" Against the same source built without the OTLP trait, HEAD uses {abs(o_rss):.1f} MB "
                   f"{'more' if o_rss > 0 else 'less'} peak RSS"
                   + (f" (idle: {a['file_mb'] - b['file_mb']:+.1f} MB file-backed, {a['anon_mb'] - b['anon_mb']:+.1f} "
                      "MB anonymous)" if "anon_mb" in a and "anon_mb" in b else "")
                   + f" — swift-otel, linked in but unused, makes the binary {a['bin_mb'] / b['bin_mb']:.1f}× as "
                   f"large — and {pct(o_cpu)} CPU per message"
                   + verdict(paired(st, "after", "no-otlp", "cpu_us"), "no CPU cost measurable.",
                             "the exporter's code costs CPU even unused." if o_cpu > 1 else "no CPU cost."))


def idle_memory(kinds: list[str]) -> dict[str, dict]:
    """RssAnon and RssFile (MB) of each contender 2 s after it turned ready, idle (no-op, empty queue)."""
    out = {}
    for kind in kinds:
        proc = bench.start(kind, "noop", "idle")
        try:
            common.wait_http_2xx(proc, bench.PORT, "/internal/ready", timeout=60)
            time.sleep(2)
            out[kind] = {"anon_mb": proc.status_kb("RssAnon") / 1024, "file_mb": proc.status_kb("RssFile") / 1024}
        except Exception as e:  # noqa: BLE001
            bench.problems.append(f"idle memory: {bench.NAMES[kind]}: {e}")
        bench.stop(proc, "idle memory")
    return out


def tls_sentences(st: dict[str, dict], ready: dict, tls_parts: list[str]) -> tuple[str, str]:
    rp, rt = median(ready["plain"]) * 1000, median(ready["tls"]) * 1000
    # exec → ready runs alternate plain / TLS back to back too; pair them by position when none failed.
    by_run = {k: {"by_run": dict(enumerate({"ms": v} for v in ready[k]))} for k in ("plain", "tls")}
    same_runs = len(ready["plain"]) == len(ready["tls"])
    d = rt - rp
    hs = (f"TLS {'adds' if d > 0 else 'saves'} {abs(d):.0f} ms to exec → ready ({rt / rp:.2f}×)"
          + verdict(paired(by_run, "tls", "plain", "ms") if same_runs else None, "the handshakes do not show.",
                    f"the TLS handshakes of {', '.join(p.split(' (')[0] for p in tls_parts)} (certificate checks "
                    "on both sides) on top of the plain connects."))
    r_cpu, r_rate = st["tls"]["cpu_us"] / st["plain"]["cpu_us"], st["tls"]["rate"] / st["plain"]["rate"]
    tp = (f"Over `amqps://` the worker drains at {r_rate:.2f}× the plain rate and uses {pct(r_cpu)} CPU per message"
          + verdict(paired(st, "tls", "plain", "cpu_us"), "decrypting the stream does not show next to the rest.",
                    "that is the TLS record layer in the worker (decrypting deliveries, encrypting acks); the "
                    "broker's own TLS work is not in this figure, only in the rate."))
    return hs, tp


def section(ctx: dict) -> str:
    tr, tl, ready = ctx["tracing"], ctx["tls"], ctx["ready"]
    befores = ctx["befores"]
    base = befores[0]
    L: list[str] = []
    a = L.append
    a("## Tracing off, and TLS vs plain (bench/compare)")
    a("")
    a(f"Generated by `bench/compare` on {ctx['date']} in {ctx['duration'] / 60:.1f} min "
      f"(`BENCH_N={N}`, `BENCH_RUNS={bench.RUNS}`, `BENCH_READY_RUNS={bench.READY_RUNS}`), on the bench's own "
      f"instance (`{os.environ['WARREN_STATE_DIR']}`). Every figure is the median of the runs, the contenders "
      "alternating run by run; the drain is bench/run's no-op drain (`HANDLER=noop PREFETCH="
      f"{bench.NOOP_PREFETCH}`, timed from exec until the broker reports {N:,} messages gone and none "
      "unacknowledged). Worker CPU per message: utime + stime of the worker (`/proc/PID/stat`, all threads, "
      "start-up included) at that moment ÷ messages. Re-run with `bench/compare`.")
    a("")
    a("Machine: " + ", ".join(f"{k}: {v}" for k, v in bench.machine())
      + f"; load average {ctx['load_start']} at the start, {ctx['load_end']} at the end (the machine is shared "
      "with other sessions' builds and tests: ratios measured side by side are the point).")
    a("")
    a("### Cost of tracing when it is off (issue 15)")
    a("")
    a("Contenders: event-worker (release) built from " + "; ".join(f"`{ctx['subjects'][k]}`" for k in befores)
      + f"; and HEAD, {ctx['head']}"
      + (", also built with `--disable-default-traits` (without OTLP: no swift-otel linked in; the library's "
         "spans are there whatever the trait)" if "no-otlp" in tr else "")
      + ". No `OTEL_*` variable set."
      + (" Tracing came in with 9e128a9 (library: a consumer span per message, nothing when no tracer is "
         "bootstrapped; it is the first parent of the merge e6294e2) and 9546340 (event-worker: OTLP/HTTP export "
         f"with swift-otel, the default trait `OTLP`), so `{base}`, the parent of 9e128a9, is the last commit "
         "without any of it." if base == ctx["pre_tracing"] else ""))
    a("")
    kinds = [k for k in (*befores, "no-otlp", "after") if k in tr]
    L.extend(rows(kinds, tr, [("after", k) for k in (base, "no-otlp") if k in tr], "measure"))
    a("")
    a(tracing_sentence(tr, base, ctx["commits"]))
    a("")
    a("### TLS vs plain (issue 14)")
    a("")
    a(f"HEAD's event-worker ({ctx['head']}). Over TLS: {', '.join(ctx['tls_parts'])}"
      + (f"; still plain: {', '.join(ctx['plain_parts'])}" if ctx["plain_parts"] else "")
      + ". Plain: `amqp://`, `redis://`, `postgresql://` without `sslmode`.")
    a("")
    rp, rt = ready["plain"], ready["tls"]
    a("| measure | plain | TLS | TLS / plain |")
    a("| --- | ---: | ---: | ---: |")
    a(f"| exec → `/internal/ready` 2xx, `HANDLER=ingest` (ms, median of {bench.READY_RUNS}) | "
      f"{median(rp) * 1000:.0f} | {median(rt) * 1000:.0f} | {ratio(median(rt), median(rp))} |")
    a(f"| exec → `/internal/started` 200 (ms) | {median(ready['plain-started']) * 1000:.0f} | "
      f"{median(ready['tls-started']) * 1000:.0f} | {ratio(median(ready['tls-started']), median(ready['plain-started']))} |")
    a("| every run: exec → ready (ms) | " + " | ".join(", ".join(f"{v * 1000:.0f}" for v in x) for x in (rp, rt))
      + " | |")
    a("")
    L.extend(rows(["plain", "tls"], tl, [("tls", "plain")], "no-op drain"))
    a("")
    handshake, throughput = tls_sentences(tl, ready, ctx["tls_parts"])
    a(f"{handshake} {throughput}")
    a("")
    if bench.problems:
        a("Problems seen during this run:")
        a("")
        L.extend(f"- {p}" for p in bench.problems)
        a("")
    return "\n".join(L).rstrip() + "\n"


def write_doc(text: str) -> None:
    block = f"{common.COMPARE_BEGIN}\n{text.rstrip()}\n{common.COMPARE_END}"
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n`bench/run` has not written its part yet.\n"
    old = common.compare_section(doc)
    if old is not None:
        doc = doc.replace(old, block)
    elif re.search(r"^## Chaos\n", doc, re.M):  # before it: bench/chaos rewrites from there to the end
        doc = re.sub(r"^## Chaos\n", lambda m: block + "\n\n" + m.group(0), doc, count=1, flags=re.M)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(doc)


def main() -> int:
    common.exit_on_sigterm()
    t_start = monotonic()
    common.LOGS.mkdir(parents=True, exist_ok=True)
    head = (OUT / "warren-source.txt").read_text().splitlines()
    ctx: dict = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(), "load_start": loadavg(),
                 "head": f"`{head[0][:90]}`" + (", plus uncommitted changes to " + ", ".join(
                     f"`{c.strip()}`" for c in head[1:]) if head[1:] else ""),
                 "head_short": head[0].split()[0], "befores": [], "subjects": {}}  # what HEAD's build is of
    for line in os.environ["BENCH_BEFORE_WORKERS"].splitlines():
        commit, binary = line.split("\t")
        kind = commit[:7]
        bench.WARRENS[kind] = (binary, {})
        bench.NAMES[kind] = f"`{kind}`"
        ctx["befores"].append(kind)
        ctx["subjects"][kind] = git("log", "-1", "--format=%h %s", commit)[:90]
    ctx["pre_tracing"] = git("rev-parse", "--short=7", "9e128a9^")
    ctx["commits"] = int(git("rev-list", "--count", f"{ctx['befores'][0]}..{ctx['head_short']}"))
    if os.environ.get("BENCH_NO_OTLP_WORKER"):
        bench.WARRENS["no-otlp"] = (os.environ["BENCH_NO_OTLP_WORKER"], {})
        bench.NAMES["no-otlp"] = f"HEAD `{ctx['head_short']}` without OTLP"
        ctx["befores_extra"] = ["no-otlp"]
    tls_env, ctx["tls_parts"], ctx["plain_parts"] = tls_urls()
    bench.WARRENS.update({"after": (bench.WORKER, {}), "plain": (bench.WORKER, {}), "tls": (bench.WORKER, tls_env)})
    bench.NAMES.update({"after": f"HEAD `{ctx['head_short']}`", "plain": "plain", "tls": "TLS"})
    note(f"N={N}, {bench.RUNS} runs, {bench.READY_RUNS} ready runs; before: {', '.join(ctx['befores'])}; "
         f"TLS: {', '.join(ctx['tls_parts'])}; load {ctx['load_start']}")

    watch = BrokerWatch([bench.QUEUE, bench.QUEUE + ".dead"])
    try:
        kinds = [*ctx["befores"], *ctx.get("befores_extra", []), "after"]
        ctx["tracing"] = {k: stats(v) for k, v in bench.throughput(watch, "noop", kinds, N).items()}
        for k in kinds:
            ctx["tracing"][k]["bin_mb"] = os.path.getsize(os.path.realpath(bench.WARRENS[k][0])) / 2**20
        for k, mem in idle_memory(kinds).items():
            ctx["tracing"][k].update(mem)
        ctx["tls"] = {k: stats(v) for k, v in bench.throughput(watch, "noop", ["plain", "tls"], N).items()}
        common.reset_ingest_state()  # the ingest workers of the exec → ready runs insert the one event
        ctx["ready"] = bench.startup(["plain", "tls"])
    finally:
        bench.finish(watch)
    ctx["duration"] = monotonic() - t_start
    ctx["load_end"] = loadavg()
    text = section(ctx)
    write_doc(text)
    print(text)
    note(f"wrote its section of {DOC.relative_to(ROOT)} in {ctx['duration'] / 60:.1f} min")
    if bench.problems:
        note(f"{len(bench.problems)} problem(s):")
        for p in bench.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
