# bench/lib/setup.sh — sourced by bench/run and bench/chaos: everything they need, installed and
# built, and the benchmark's own server instance up. Not meant to be run on its own.
#
# After it: $ROOT (the repository), $OUT (bench/out), $PY (the venv's python), $WORKER (the
# release event-worker, built by scripts/build-release), bench/out/{consumer,publisher,prober,
# libfloor,swift-floor}, and AMQP_URL / REDIS_URL / DATABASE_URL exported for the bench instance.
#
# Environment (all optional):
#   WARREN_STATE_DIR   the bench's server instance (default /tmp/warren-bench: NOT the tests' default
#                      /tmp/warren-services, whose servers other sessions' tests restart at will)
#   WARREN_AMQP_PORT / WARREN_REDIS_PORT / WARREN_PG_PORT   its ports (default 5692 / 6399 / 5462)
#   BENCH_BUILD_PATH   SwiftPM scratch path for the release build (default bench/out/swift-build, so a
#                      `swift test` running in .build neither blocks nor is blocked by the bench)
#   BENCH_SKIP_BUILD=1 use the event-worker already built there
#   BENCH_LOCK         a lock file (flock) held around each build and around the measurements, for a
#                      machine whose builds take turns on it (e.g. /tmp/warren-build.lock); do not also
#                      wrap the bench command in flock on the same file (it would wait for itself)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
cd "$ROOT"

note() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

export WARREN_STATE_DIR=${WARREN_STATE_DIR:-/tmp/warren-bench}
export WARREN_AMQP_PORT=${WARREN_AMQP_PORT:-5692}
export WARREN_REDIS_PORT=${WARREN_REDIS_PORT:-6399}
export WARREN_PG_PORT=${WARREN_PG_PORT:-5462}
[[ $WARREN_STATE_DIR != /tmp/warren-services && $WARREN_AMQP_PORT != 5672 ]] ||
    die "refusing to benchmark on the tests' default instance (/tmp/warren-services, port 5672): other sessions restart its servers"

# Pinned, so that figures stay comparable from run to run. faststream[rabbit] brings aio-pika;
# uvicorn serves the article's ASGI app (the article installs `faststream[rabbit] uvicorn redis asyncpg`).
PIP_PACKAGES=("faststream[rabbit]==0.7.8" "uvicorn==0.54.0" "redis==8.1.0" "asyncpg==0.32.0")

# ---------------------------------------------------------------- system packages

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v cc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists librabbitmq 2>/dev/null || missing+=(librabbitmq-dev)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v valgrind >/dev/null || missing+=(valgrind)  # bench/run's callgrind instruction counts
if ((${#missing[@]})); then
    ((EUID == 0)) || die "missing packages (${missing[*]}); run as root or install them"
    note "installing ${missing[*]} (apt-get)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
command -v swift >/dev/null || die "swift not found (Swift 6 toolchain required)"

# ---------------------------------------------------------------- servers (own instance)

scripts/services up >&2
eval "$(scripts/services env)"
export AMQP_URL REDIS_URL DATABASE_URL

# ---------------------------------------------------------------- python peers

VENV=$OUT/venv
PY=$VENV/bin/python
mkdir -p "$OUT"
[[ -x $PY ]] || { note "creating $VENV"; /usr/bin/python3 -m venv "$VENV"; }
if ! "$PY" - "${PIP_PACKAGES[@]}" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name.split("[")[0]) != want:
        sys.exit(1)
import aio_pika  # the [rabbit] extra
EOF
    note "pip install ${PIP_PACKAGES[*]}"
    "$PY" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" >&2
fi

# ---------------------------------------------------------------- builds

read -ra RMQ_FLAGS < <(pkg-config --cflags --libs librabbitmq)
for p in consumer publisher; do
    cc -O2 -Wall -Wextra -std=gnu11 -o "$OUT/$p" "bench/c/$p.c" "${RMQ_FLAGS[@]}" ||
        die "building bench/c/$p.c failed"
done
cc -O2 -Wall -Wextra -std=gnu11 -o "$OUT/prober" bench/c/prober.c || die "building bench/c/prober.c failed"
read -ra FLOOR_FLAGS < <(pkg-config --cflags --libs librabbitmq hiredis libpq)
cc -O2 -Wall -Wextra -std=gnu11 -o "$OUT/libfloor" bench/c/libfloor.c "${FLOOR_FLAGS[@]}" ||
    die "building bench/c/libfloor.c failed"
# The Swift runtime alone, linked with scripts/build-release's flags.
swiftc -swift-version 6 -O -static-stdlib -use-ld=lld \
    -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic \
    -o "$OUT/swift-floor" bench/swift-floor/main.swift >&2 || die "building bench/swift-floor failed"
cc -O2 -Wall -Wextra -std=gnu11 -shared -fPIC -o "$OUT/sigsuspend-shim.so" bench/c/sigsuspend-shim.c ||
    die "building bench/c/sigsuspend-shim.c failed"

# LOCKED: prefix for a build or a measurement (flock on BENCH_LOCK, or nothing).
LOCKED=()
[[ -z ${BENCH_LOCK:-} ]] || LOCKED=(flock "$BENCH_LOCK")

# build_worker SRC SCRATCH NAME [SWIFT BUILD OPTIONS...]: builds event-worker (release) of the package in
# SRC with the SwiftPM scratch path SCRATCH (unless BENCH_SKIP_BUILD=1), links it as $OUT/bin/NAME and
# prints that path. The build is this tree's scripts/build-release (--static-swift-stdlib, as the
# image's), whatever the commit in SRC, so that contenders differ only in their source.
# Run under a name of its own (a link to the same binary): the machine is shared, and a process
# named event-worker was twice seen stopped by a signal the bench did not send.
build_worker() {
    local src=$1 scratch=$2 name=$3 built
    shift 3
    # A commit from before scripts/build-release is built as it was then (a plain release build, the
    # Swift runtime loaded from the toolchain), so that "before" is what shipped.
    local build=("$src/scripts/build-release") show=("$src/scripts/build-release" --show-bin-path)
    if [[ ! -x $src/scripts/build-release ]]; then
        build=(swift build -c release --product event-worker)
        show=(swift build -c release --show-bin-path)
    fi
    if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
        note "${build[*]} --scratch-path $scratch $* (in $src)"
        (cd "$src" && "${LOCKED[@]}" "${build[@]}" --scratch-path "$scratch" "$@" >&2) ||
            die "swift build failed (in $src)"
    fi
    built=$(cd "$src" && "${show[@]}" --scratch-path "$scratch" "$@")/event-worker
    [[ -x $built ]] || die "$built not built"
    mkdir -p "$OUT/bin"
    ln -sfn "$built" "$OUT/bin/$name"
    echo "$OUT/bin/$name"
}

# build_rev REV: event-worker (release) built from commit REV: a `git archive` of it in
# $OUT/rev/<commit>/src (no worktree registered in the shared repository), built in .../build, linked
# as $OUT/bin/warren-bench-worker-<commit>; prints that path. Used by bench/compare (BENCH_BEFORE) and
# bench/run (BENCH_BASELINE).
build_rev() {
    local sha dir
    sha=$(git -C "$ROOT" rev-parse --short=12 --verify "$1^{commit}") || die "no commit '$1'"
    dir=$OUT/rev/$sha
    if [[ ! -f $dir/src/Package.swift ]]; then
        rm -rf "$dir/src" && mkdir -p "$dir/src"
        git -C "$ROOT" archive "$sha" | tar -x -C "$dir/src"
    fi
    build_worker "$dir/src" "$dir/build" "warren-bench-worker-$sha"
}

WORKER=$(build_worker "$ROOT" "${BENCH_BUILD_PATH:-$OUT/swift-build}" warren-bench-worker)
# Which source the binary is: the commit, and what the work tree changed (other sessions edit it).
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] || [[ ! -s $OUT/warren-source.txt ]]; then
    { git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null || echo unknown
      git -C "$ROOT" status --porcelain -- Sources Package.swift 2>/dev/null | awk '{ print "  " $0 }'
    } >"$OUT/warren-source.txt"
fi
export WORKER PY OUT ROOT

# One benchmark at a time on the bench instance: bench/run and bench/chaos stop and fill its queues.
exec 8>"$OUT/.bench.lock"
flock -n 8 || { note "another bench/run or bench/chaos holds $OUT/.bench.lock; waiting"; flock 8; }
