"""Helpers shared by bench/lib/bench.py (bench/run) and bench/lib/chaos.py (bench/chaos).

Standard library only. Runs under the bench venv's python, started by bench/run or bench/chaos
after bench/lib/setup.sh has brought up the bench's own servers and exported AMQP_URL,
REDIS_URL, DATABASE_URL, WORKER, PY, OUT and WARREN_STATE_DIR.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
LOGS = OUT / "logs"
PEERS = ROOT / "bench" / "peers"
LIB = ROOT / "bench" / "lib"
monotonic = time.monotonic

PROG = "bench"


def note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        sys.exit(f"{PROG}: error: {name} must be a positive integer, not '{text}'")
    return int(text)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(cmd: list, *, check: bool = True, timeout: float = 120, **kw) -> str:
    """Runs a command; returns its stdout (stripped). Raises with its stderr on failure."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}: {r.stderr.strip()[-600:]}")
    return r.stdout.strip()


def services(*args: str, timeout: float = 180) -> str:
    return run([ROOT / "scripts" / "services", *args], timeout=timeout)


def psql(sql: str) -> str:
    return services("psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql)


def redis_cli(*args: str) -> str:
    return services("redis-cli", *args)


CREATE_EVENTS = """CREATE TABLE IF NOT EXISTS events (
    id uuid PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now())"""


def reset_ingest_state() -> None:
    """An empty events table and an empty Redis: every run starts cold."""
    psql(CREATE_EVENTS + "; TRUNCATE events")
    redis_cli("FLUSHDB")


def event_rows(first: int, last: int) -> tuple[int, int, int]:
    """(rows, distinct ids, rows whose payload n is within first..last)."""
    out = psql("SELECT count(*), count(DISTINCT id), "
               f"count(*) FILTER (WHERE (payload->>'n')::bigint BETWEEN {first} AND {last}) FROM events")
    a, b, c = (int(x) for x in out.split("|"))
    return a, b, c


def publish(queue: str, n: int, *, reset: bool = False, offset: int = 0, timeout: float = 120) -> None:
    """bench/out/publisher: N persistent events (ids offset+1..offset+n), Warren's topology."""
    cmd = [OUT / "publisher", "-t", "-o", str(offset)]
    if reset:
        cmd.append("-r")
    run([*cmd, queue, str(n)], timeout=timeout)


# ---------------------------------------------------------------- broker counts


class BrokerWatch:
    """Ready and unacknowledged counts of queues, as the broker keeps them, every INTERVAL ms.

    Runs bench/lib/qwatch.escript (an RPC to rabbit_amqqueue:info/2 over Erlang distribution,
    which is how rabbitmqctl reads them, without booting a CLI per call). A reader thread stamps
    every line with time.monotonic() on arrival and keeps the history, so a caller can find the
    first poll at which a condition held, even while it was busy elsewhere.
    """

    def __init__(self, queues: list[str], interval_ms: int = 10):
        self.queues = queues
        self.interval_ms = interval_ms
        self.history: dict[str, list[tuple[float, int, int, int]]] = {q: [] for q in queues}
        self.cond = threading.Condition()
        self.closing = False
        self.restarts = 0
        self._spawn()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda q: all(self.latest(x) for x in queues), timeout=30, what="qwatch's first poll")

    def _spawn(self) -> None:
        state = Path(os.environ["WARREN_STATE_DIR"])
        config = dict(line.split("=", 1) for line in (state / "config").read_text().split())
        cookie = (state / "rabbitmq" / "home" / ".erlang.cookie").read_text().strip()
        home = OUT / "erlhome"
        home.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ERL_EPMD_ADDRESS": "127.0.0.1",
               "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            ["escript", LIB / "qwatch.escript", config["NODE"], cookie, "/", str(self.interval_ms), *self.queues],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(LOGS / "qwatch.err", "ab"), env=env,
            text=True)

    def _read(self) -> None:
        while True:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                t = monotonic()
                parts = line.split()
                if len(parts) != 4:
                    continue
                q, ready, unacked, consumers = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
                with self.cond:
                    h = self.history.setdefault(q, [])
                    h.append((t, ready, unacked, consumers))
                    if len(h) > 200_000:
                        del h[:100_000]
                    self.cond.notify_all()
            if self.closing:
                return
            # It should not end by itself (seen once across a broker restart): start it again.
            code = self.proc.wait()
            self.restarts += 1
            note(f"qwatch.escript exited (code {code}, see {LOGS / 'qwatch.err'}); starting it again")
            time.sleep(0.5)
            self._spawn()

    def latest(self, queue: str) -> tuple[float, int, int, int] | None:
        h = self.history.get(queue)
        return h[-1] if h else None

    def wait(self, pred, *, timeout: float, what: str) -> None:
        deadline = monotonic() + timeout
        with self.cond:
            while not pred(self):
                left = deadline - monotonic()
                if left <= 0:
                    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what} "
                                       f"(last counts: { {q: self.latest(q) for q in self.queues} })")
                self.cond.wait(min(left, 0.5))

    def wait_counts(self, queue: str, ready: int, unacked: int = 0, *, timeout: float = 30) -> None:
        def ok(w: BrokerWatch) -> bool:
            last = w.latest(queue)
            return last is not None and last[1] == ready and last[2] == unacked
        self.wait(ok, timeout=timeout, what=f"{queue} to hold {ready} ready and {unacked} unacked")

    def first_after(self, queue: str, since: float, pred) -> float | None:
        """Arrival time of the first poll after `since` whose (ready, unacked) satisfy pred."""
        with self.cond:
            for t, ready, unacked, _ in self.history.get(queue, []):
                if t >= since and pred(ready, unacked):
                    return t
        return None

    def wait_drained(self, queue: str, since: float, *, timeout: float, alive=None) -> float:
        """Waits until a poll after `since` shows 0 ready and 0 unacked; returns when it arrived.
        `alive()` returning False (the consumer died) ends the wait early with an error."""
        deadline = monotonic() + timeout
        while True:
            t = self.first_after(queue, since, lambda r, u: r == 0 and u == 0)
            if t is not None:
                return t
            if monotonic() > deadline:
                raise RuntimeError(f"{queue} not drained within {timeout:.0f} s (last: {self.latest(queue)})")
            if alive is not None and not alive():
                # One more look: it may have drained just before exiting (the C consumer does).
                time.sleep(0.05)
                t = self.first_after(queue, since, lambda r, u: r == 0 and u == 0)
                if t is not None:
                    return t
                raise RuntimeError(f"the consumer exited before {queue} was drained (last: {self.latest(queue)})")
            with self.cond:
                self.cond.wait(0.2)

    def clear(self) -> None:
        with self.cond:
            for q in self.history:
                self.history[q] = self.history[q][-1:]

    def close(self) -> None:
        self.closing = True
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- processes


STARTED: list[subprocess.Popen] = []


def exit_on_sigterm() -> None:
    """SIGTERM ends the harness through SystemExit, so its `finally` blocks stop what it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def kill_leftovers() -> None:
    """Ends the processes this harness started and that still run (by their pids only)."""
    for p in STARTED:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
            except Exception:
                p.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (exited ones included): its CPU-time
    clock (clock_gettime on the process's CPUCLOCK), which is what /proc/PID/stat's utime + stime report,
    in ns rather than 10 ms ticks. Readable while it runs and while it is an unreaped zombie; falls back
    to /proc/PID/stat; 0 once it is gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of the whole process
    except OSError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0.0


class Proc:
    """A process under test: exec time, exit code, and its memory from /proc/PID/status."""

    def __init__(self, name: str, cmd: list, env: dict, log: Path, cwd: Path | None = None):
        self.name = name
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self.log = open(log, "wb")
        full_env = {**os.environ, **env}
        self.t_exec = monotonic()
        self.p = subprocess.Popen([str(c) for c in cmd], env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=cwd)
        STARTED.append(self.p)
        self.pid = self.p.pid
        self._sampling = False
        self.rss_max_kb = 0
        self.cpu_samples: list[tuple[float, float]] = []  # (monotonic, CPU seconds), while sampling

    def alive(self) -> bool:
        """Whether it still runs. Does not reap it: an exited process stays a zombie, whose CPU time
        can still be read (the C consumer exits by itself at the end of its drain), until wait()."""
        if self.p.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return self.p.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: the signal) once it has exited, reaped or not (see alive()); else None."""
        if self.p.returncode is not None:
            return self.p.returncode
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.p.poll()
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def status_kb(self, field: str) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
        return 0

    def rss_kb(self) -> int:
        return self.status_kb("VmRSS")

    def hwm_kb(self) -> int:
        return self.status_kb("VmHWM")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_at(self, t: float) -> float:
        """CPU time at monotonic time t, from the samples start_sampling() took (the last one at or
        before t; 0 if none)."""
        best = 0.0
        for ts, cpu in self.cpu_samples:
            if ts > t:
                break
            best = cpu
        return best

    def start_sampling(self, every: float = 0.05) -> None:
        """Samples VmRSS every `every` s until stop_sampling(); keeps the maximum."""
        self._sampling = True
        self.rss_max_kb = 0
        self.cpu_samples = []

        def loop() -> None:
            while self._sampling and self.alive():
                self.rss_max_kb = max(self.rss_max_kb, self.rss_kb())
                self.cpu_samples.append((monotonic(), self.cpu_seconds()))
                time.sleep(every)
        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> int:
        self.rss_max_kb = max(self.rss_max_kb, self.rss_kb())
        self._sampling = False
        self._sampler.join()
        return self.rss_max_kb

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM, wait; returns the exit code (negative: killed by that signal)."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        """Waits for the exit (SIGKILL after `timeout` s); returns the exit code."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
            note(f"{self.name} (pid {self.pid}) still running after {timeout:.0f} s: killed")
        self.log.close()
        return rc

    def log_tail(self, n: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------- HTTP


def http_get(port: int, path: str, *, timeout: float = 1.0, host: str = "127.0.0.1") -> tuple[int, float]:
    """One GET on a fresh connection: (status, seconds). Status 0: no answer (refused, reset,
    timed out, or garbage)."""
    t0 = monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(max(0.001, timeout - (monotonic() - t0)))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return (int(m.group(1)) if m else 0), monotonic() - t0
    except OSError:
        return 0, monotonic() - t0


def wait_http_2xx(proc: Proc, port: int, path: str, *, timeout: float = 60, every: float = 0.002) -> float:
    """Polls GET path every `every` s until it answers 2xx; returns that moment (monotonic)."""
    deadline = monotonic() + timeout
    while True:
        status, _ = http_get(port, path, timeout=0.5)
        if 200 <= status < 300:
            return monotonic()
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited (code {proc.returncode}) before {path} answered 2xx:\n"
                               f"{proc.log_tail()}")
        if monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: {path} not 2xx within {timeout:.0f} s (last status {status})")
        time.sleep(every)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_port_free(port: int, timeout: float = 10) -> None:
    deadline = monotonic() + timeout
    while not port_free(port):
        if monotonic() > deadline:
            raise RuntimeError(f"port {port} still in use after {timeout:.0f} s")
        time.sleep(0.05)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of values; NaN if there are none."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(q / 100 * len(v)) - 1))]


# ---------------------------------------------------------------- probes during a drain


class Prober:
    """bench/out/prober (bench/c/prober.c): GET each of `paths` every `interval_ms` on a fresh connection,
    as a kubelet does; its lines go to `log`. stop() ends it and returns its probes and CPU time."""

    def __init__(self, port: int, paths: list[str], log: Path, interval_ms: int = 5):
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self.t0 = monotonic()
        with open(log, "wb") as out:
            self.p = subprocess.Popen([str(OUT / "prober"), str(port), str(interval_ms), *paths], stdout=out,
                                      stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        STARTED.append(self.p)

    def stop(self) -> dict:
        """{"probes": [(start, path, status, latency s)], "cpu": s, "wall": s}."""
        wall = monotonic() - self.t0
        self.p.send_signal(signal.SIGTERM)
        try:  # read its CPU time before reaping it
            os.waitid(os.P_PID, self.p.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        cpu = cpu_seconds(self.p.pid)
        self.p.wait(10)
        probes = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 4:
                probes.append((int(parts[0]) / 1e9, parts[1], int(parts[2]), int(parts[3]) / 1e9))
        return {"probes": probes, "cpu": cpu, "wall": wall}


def probe_stats(probes: list[tuple[float, str, int, float]], path: str) -> dict:
    """count, p50 / p90 / p99 / max latency (ms) and non-2xx (0: no answer) of one path's probes."""
    mine = [p for p in probes if p[1] == path]
    lat = [p[3] * 1000 for p in mine]
    bad = [p[2] for p in mine if not 200 <= p[2] < 300]
    return {"count": len(mine), "p50": percentile(lat, 50), "p90": percentile(lat, 90),
            "p99": percentile(lat, 99), "max": max(lat) if lat else float("nan"), "non2xx": len(bad),
            "statuses": sorted(set(bad))}


# ---------------------------------------------------------------- frozen dependencies


def children(pid: int) -> list[int]:
    """Pids whose parent is pid."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return out


def freeze(dependency: str) -> list[int]:
    """SIGSTOPs the bench instance's redis-server, or its postmaster and then every child of it (the
    backends, which serve existing connections, and the auxiliary processes: stopping the postmaster
    alone leaves established connections answering). Returns the pids stopped: thaw() them."""
    main = int(services("pid", dependency))
    os.kill(main, signal.SIGSTOP)
    stopped = [main]
    if dependency == "postgres":
        for _ in range(2):  # once more for a child forked while the first pass ran
            for child in children(main):
                if child not in stopped:
                    try:
                        os.kill(child, signal.SIGSTOP)
                        stopped.append(child)
                    except ProcessLookupError:
                        pass
    return stopped


def thaw(pids: list[int]) -> None:
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- docs/BENCHMARKS.md

# bench/compare's section of docs/BENCHMARKS.md lies between these; bench/run keeps it as it is.
COMPARE_BEGIN, COMPARE_END = "<!-- compare:begin -->", "<!-- compare:end -->"


def compare_section(text: str) -> str | None:
    """The marked section of a BENCHMARKS.md text, markers included; None if it has none."""
    m = re.search(re.escape(COMPARE_BEGIN) + ".*?" + re.escape(COMPARE_END), text, re.S)
    return m.group(0) if m else None
