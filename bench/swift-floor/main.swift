// The memory floor of the Swift runtime as event-worker links it (statically: `--static-swift-stdlib`,
// with scripts/build-release's linker flags), for bench/run's RSS rows: a program that does nothing
// but start, print "ready" and wait for SIGTERM or SIGINT. What it maps beyond libc is what any Swift
// worker pays before its first line of its own (bench/lib/setup.sh builds it with swiftc).
import Glibc

var signals = sigset_t()
sigemptyset(&signals)
sigaddset(&signals, SIGTERM)
sigaddset(&signals, SIGINT)
sigprocmask(SIG_BLOCK, &signals, nil)
print("ready")
fflush(nil)  // all streams: stdout is a global Swift 6 will not read
var received: Int32 = 0
sigwait(&signals, &received)
