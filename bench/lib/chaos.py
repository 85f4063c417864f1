"""bench/chaos's scenario: ingest CHAOS_EVENTS events through event-worker while its broker, Redis
and Postgres are restarted under it and the worker itself is SIGTERMed and started again; then
abuse its health port. Asserts, prints a summary, updates the Chaos section of docs/BENCHMARKS.md,
exits 1 on any violation.

Started by bench/chaos (after bench/lib/setup.sh); see bench/chaos for the environment it reads.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time

import common
from common import (LIB, LOGS, ROOT, BrokerWatch, Proc, event_rows, http_get, loadavg, monotonic, note, publish,
                    reset_ingest_state, services, wait_http_2xx, wait_port_free)

common.PROG = "bench/chaos"

TOTAL = common.env_int("CHAOS_EVENTS", 50_000)
CHUNK = 500
PUBLISH_SECONDS = common.env_int("CHAOS_PUBLISH_SECONDS", 45)
PORT = common.env_int("CHAOS_HEALTH_PORT", 18091)
QUEUE = "chaos-events"
WORKER = os.environ["WORKER"]
DOC = ROOT / "docs" / "BENCHMARKS.md"

violations: list[str] = []
timeline: list[str] = []
T0 = monotonic()


def event(text: str) -> None:
    line = f"t={monotonic() - T0:6.1f} s  {text}"
    timeline.append(line)
    note(line)


class WorkerUnderTest:
    """The current event-worker incarnation and every exit code so far."""

    def __init__(self) -> None:
        self.proc: Proc | None = None
        self.incarnation = 0
        self.exits: list[tuple[int, int, str]] = []  # (incarnation, code, how)
        self.expect_exit = False

    def start(self) -> None:
        wait_port_free(PORT)
        self.incarnation += 1
        self.expect_exit = False
        self.proc = Proc("warren", [WORKER, "run"],
                         {"HANDLER": "ingest", "QUEUE": QUEUE, "HEALTH_PORT": str(PORT), "HEALTH_HOST": "127.0.0.1",
                          "LOG_FORMAT": "json"},
                         LOGS / f"chaos.worker.{self.incarnation}.log")
        event(f"worker #{self.incarnation} started (pid {self.proc.pid})")

    def sigterm(self) -> None:
        assert self.proc is not None
        self.expect_exit = True
        t = monotonic()
        rc = self.proc.terminate(timeout=40)
        self.exits.append((self.incarnation, rc, "SIGTERM"))
        event(f"worker #{self.incarnation} SIGTERMed: exit {rc} after {monotonic() - t:.1f} s")
        if rc != 0:
            violations.append(f"worker #{self.incarnation} exited {rc} after SIGTERM (expected 0): "
                              f"{self.proc.log_tail(3)}")

    def check_alive(self) -> None:
        if self.proc is not None and not self.expect_exit and not self.proc.alive():
            rc = self.proc.returncode
            log = self.proc.log_path.read_text(errors="replace")
            how = ("stopped by a signal bench/chaos did not send" if "shutting down" in log
                   else "exited by itself")
            self.exits.append((self.incarnation, rc, how))
            event(f"worker #{self.incarnation} {how.upper()}: exit code {rc}")
            violations.append(f"worker #{self.incarnation} {how}, exit code {rc}: {self.proc.log_tail(2)}")
            self.expect_exit = True


class ProbeLoop(threading.Thread):
    """GET /internal/alive (and /internal/ready) every 100 ms while the worker process is up.
    A liveness failure is any answer but 200, or no answer within 1 s, from the first 200 after
    the worker starts until it is sent SIGTERM."""

    def __init__(self, w: WorkerUnderTest):
        super().__init__(daemon=True)
        self.w = w
        self.stop_flag = False
        self.paused = False
        self.alive_ok = 0
        self.alive_bad: list[str] = []
        self.ready_ok = 0
        self.ready_bad = 0
        self.ready_bad_spans: list[tuple[float, float]] = []
        self.max_alive_ms = 0.0

    def run(self) -> None:
        seen_200: dict[int, bool] = {}
        ready_down_since: float | None = None
        while not self.stop_flag:
            t = monotonic()
            w = self.w
            proc = w.proc
            if proc is not None and proc.alive() and not w.expect_exit and not self.paused:
                inc = w.incarnation
                status, secs = http_get(PORT, "/internal/alive", timeout=1.0)
                if status == 200:
                    seen_200[inc] = True
                    self.alive_ok += 1
                    self.max_alive_ms = max(self.max_alive_ms, secs * 1000)
                elif seen_200.get(inc) and proc.alive() and not w.expect_exit and not self.paused:
                    self.alive_bad.append(f"t={t - T0:.1f} s worker #{inc}: "
                                          + (f"status {status}" if status else f"no answer in {secs * 1000:.0f} ms"))
                rs, _ = http_get(PORT, "/internal/ready", timeout=1.0)
                if rs == 200:
                    self.ready_ok += 1
                    if ready_down_since is not None:
                        self.ready_bad_spans.append((ready_down_since - T0, t - T0))
                        ready_down_since = None
                else:
                    self.ready_bad += 1
                    if ready_down_since is None:
                        ready_down_since = t
            time.sleep(max(0.0, 0.1 - (monotonic() - t)))


class Publisher(threading.Thread):
    """Publishes TOTAL events in chunks of CHUNK, paced over PUBLISH_SECONDS; a chunk that fails
    (broker down) is published again whole once the broker is back. Its events then reach the
    queue twice: the same ids, so still one row each."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.retries = 0
        self.done = False
        self.error: str | None = None

    def run(self) -> None:
        chunks = TOTAL // CHUNK
        start = monotonic()
        try:
            for i in range(chunks):
                due = start + i * PUBLISH_SECONDS / chunks
                time.sleep(max(0.0, due - monotonic()))
                while True:
                    try:
                        publish(QUEUE, CHUNK, offset=i * CHUNK, timeout=60)
                        break
                    except Exception:  # noqa: BLE001 — the broker is down: try again
                        self.retries += 1
                        if self.retries > 2000:
                            raise
                        time.sleep(0.5)
            self.done = True
        except Exception as e:  # noqa: BLE001
            self.error = str(e)


def restart(name: str, down_seconds: float) -> None:
    t = monotonic()
    services("stop", name)
    event(f"{name} stopped ({monotonic() - t:.1f} s)")
    time.sleep(down_seconds)
    t = monotonic()
    services("start", name)
    event(f"{name} started again ({monotonic() - t:.1f} s)")


def metric(name: str) -> float | None:
    """A counter from the worker's /metrics (summed over labels)."""
    import socket
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=2) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        total = None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total = (total or 0) + float(line.rsplit(" ", 1)[1])
        return total
    except OSError:
        return None


def sleep_until(t_rel: float, w: WorkerUnderTest) -> None:
    while monotonic() - T0 < t_rel:
        w.check_alive()
        time.sleep(0.1)


def main() -> int:
    common.exit_on_sigterm()
    global T0
    note(f"{TOTAL} events in chunks of {CHUNK} over ~{PUBLISH_SECONDS} s; worker health port {PORT}; load {loadavg()}")
    LOGS.mkdir(parents=True, exist_ok=True)
    for q in (QUEUE, QUEUE + ".dead"):
        try:
            services("rabbitmqctl", "-q", "delete_queue", q)
        except Exception:  # noqa: BLE001 — not there
            pass
    reset_ingest_state()
    watch = BrokerWatch([QUEUE, QUEUE + ".dead"], interval_ms=200)
    w = WorkerUnderTest()
    probes = ProbeLoop(w)
    pub = Publisher()
    dead_lettered = 0.0
    abuse: dict = {}
    try:
        T0 = monotonic()
        w.start()
        wait_http_2xx(w.proc, PORT, "/internal/ready", timeout=60)
        event("worker #1 ready")
        probes.start()
        pub.start()
        event("publishing")

        sleep_until(6, w)
        restart("rabbitmq", 3)           # broker restart 1
        sleep_until(16, w)
        restart("redis", 4)
        sleep_until(25, w)
        restart("postgres", 4)
        sleep_until(34, w)
        dead_lettered += metric("warren_messages_dead_lettered_total") or 0
        w.sigterm()                      # the worker: SIGTERM (drains, exit 0) and a new one
        w.start()
        sleep_until(42, w)
        restart("rabbitmq", 3)           # broker restart 2

        deadline = monotonic() + 300
        while not pub.done and pub.error is None and monotonic() < deadline:
            w.check_alive()
            time.sleep(0.2)
        if pub.error or not pub.done:
            violations.append(f"publisher did not finish: {pub.error or 'timeout'}")
        event(f"all {TOTAL} events published ({pub.retries} failed publish attempts retried)")

        # Wait for the backlog: every event in Postgres, the queue empty, nothing unacked.
        rows = (0, 0, 0)
        deadline = monotonic() + 300
        while monotonic() < deadline:
            w.check_alive()
            rows = event_rows(1, TOTAL)
            last = watch.latest(QUEUE)
            if rows[0] >= TOTAL and last and last[1] == 0 and last[2] == 0:
                break
            time.sleep(1)
        event(f"drained: rows={rows[0]} distinct={rows[1]}, queue ready/unacked={watch.latest(QUEUE)[1:3]}")
        w.check_alive()
        probes.stop_flag = True
        probes.join()

        if rows != (TOTAL, TOTAL, TOTAL):
            violations.append(f"events table: (rows, distinct ids, ids 1..{TOTAL}) = {rows}, expected {TOTAL} each")
        last = watch.latest(QUEUE)
        if not last or last[1] != 0 or last[2] != 0:
            violations.append(f"{QUEUE} not empty at the end: ready/unacked = {last[1:3] if last else '?'}")
        dead = watch.latest(QUEUE + ".dead")
        if not dead or dead[1] != 0:
            violations.append(f"{QUEUE}.dead holds {dead[1] if dead else '?'} messages (dead-lettered)")
        dead_lettered += metric("warren_messages_dead_lettered_total") or 0
        if dead_lettered:
            violations.append(f"warren_messages_dead_lettered_total = {dead_lettered:.0f}")
        if probes.alive_bad:
            violations.append(f"liveness failed {len(probes.alive_bad)} times while the worker was up: "
                              + "; ".join(probes.alive_bad[:5]))

        # HTTP abuse on the same worker, then the probe must still answer within 100 ms.
        event("HTTP abuse: 2,000 random-byte requests, 300 stalled connections")
        r = subprocess.run([sys.executable, LIB / "http_abuse.py", str(PORT)], capture_output=True, text=True,
                           timeout=600)
        sys.stderr.write(r.stderr)
        try:
            abuse = json.loads(r.stdout)
        except json.JSONDecodeError:
            abuse = {"ok": False}
        if r.returncode != 0 or not abuse.get("ok"):
            violations.append(f"after the HTTP abuse the probe did not answer 200 within 100 ms: "
                              f"{abuse.get('probe_after')}")
        w.check_alive()
        w.sigterm()
    except Exception as e:  # noqa: BLE001
        violations.append(f"the scenario broke off: {e}")
        event(f"ERROR: {e}")
    finally:
        probes.stop_flag = True
        watch.close()
        common.kill_leftovers()
        try:
            services("up")  # leave every server running
        except Exception:  # noqa: BLE001
            pass

    summary = summarize(w, probes, pub, abuse, dead_lettered)
    print(summary)
    write_doc(summary)
    if violations:
        note(f"FAILED: {len(violations)} violation(s)")
        return 1
    note("all assertions held")
    return 0


def summarize(w: WorkerUnderTest, probes: ProbeLoop, pub: Publisher, abuse: dict, dead: float) -> str:
    L = ["## Chaos", "",
         f"Written by `bench/chaos` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} (load average "
         f"{loadavg()} at the end). {TOTAL:,} events published in chunks of {CHUNK} over ~{PUBLISH_SECONDS} s "
         "(a chunk that failed while the broker was down was published again whole: same ids) into a classic "
         "queue consumed by `event-worker` (`HANDLER=ingest`, defaults), while the broker was restarted twice, "
         "Redis and Postgres once each (`scripts/services stop`, a few seconds down, `start`), and the worker "
         "was SIGTERMed and started again. `/internal/alive` and `/internal/ready` were polled every 100 ms "
         "throughout. Then the health port was abused (`bench/lib/http_abuse.py`).", "",
         "| assertion | result | |", "| --- | --- | --- |"]
    rows_ok = not any(v.startswith("events table") for v in violations)
    L.append(f"| exactly {TOTAL:,} rows, one per event | "
             + (f"{TOTAL:,} rows" if rows_ok else next(v for v in violations if v.startswith("events table")))
             + f" | {'held' if rows_ok else '**violated**'} |")
    dl_ok = not any("dead" in v for v in violations)
    L.append(f"| nothing dead-lettered | `.dead` queue and `warren_messages_dead_lettered_total`: {dead:.0f} | "
             f"{'held' if dl_ok else '**violated**'} |")
    L.append(f"| liveness never failed while the worker was up | {probes.alive_ok} × 200, "
             f"{len(probes.alive_bad)} failures (slowest 200: {probes.max_alive_ms:.1f} ms) | "
             f"{'held' if not probes.alive_bad else '**violated**'} |")
    exits = ", ".join(f"#{i}: {rc} ({how})" for i, rc, how in w.exits)
    exit_ok = all(rc == 0 and how == "SIGTERM" for _, rc, how in w.exits) and bool(w.exits)
    L.append(f"| no crash: every worker exit code 0 | {exits or 'none'} | {'held' if exit_ok else '**violated**'} |")
    pa = abuse.get("probe_after", {})
    L.append(f"| a probe answers in < 100 ms after the HTTP abuse | {pa.get('status', '?')} in {pa.get('ms', '?')} ms "
             f"(next 10: max {pa.get('next10_max_ms', '?')} ms) | {'held' if abuse.get('ok') else '**violated**'} |")
    L.append("")
    spans = probes.ready_bad_spans
    L.append(f"Readiness (not asserted; it is meant to fail while a dependency is down): {probes.ready_bad} of "
             f"{probes.ready_ok + probes.ready_bad} polls answered non-200, in {len(spans)} spans: "
             + ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in spans) + ".")
    L.append("")
    if abuse.get("garbage"):
        g, st = abuse["garbage"], abuse["stalled"]
        answered = sum(1 for p in st["probes_during"] if p["status"] == 200)
        L.append(f"HTTP abuse: {g['requests']:,} random-byte requests in {g['seconds']} s, outcomes {g['outcomes']}; "
                 f"{st['opened']} stalled connections held {st['held_s']} s ({st['refused']} refused at connect, "
                 f"{st['closed_by_server_during_hold']} closed by the server meanwhile); probes while they were "
                 f"held: {answered} of {len(st['probes_during'])} answered 200.")
        L.append("")
    L.append(f"Publisher: {pub.retries} failed chunk attempts retried.")
    L.append("")
    L.append("Timeline:")
    L.append("")
    L.append("```")
    L.extend(timeline)
    L.append("```")
    if violations:
        L.append("")
        L.append("Violations:")
        L.append("")
        L.extend(f"- {v}" for v in violations)
    return "\n".join(L) + "\n"


def write_doc(section: str) -> None:
    if not DOC.exists():
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text("# Benchmarks\n\n`bench/run` has not written its part yet.\n\n" + section)
        return
    text = DOC.read_text()
    if re.search(r"^## Chaos\n", text, re.M):
        text = re.sub(r"^## Chaos\n.*", lambda _: section, text, flags=re.S | re.M)
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
