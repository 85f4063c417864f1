/*
 * bench/c/sigsuspend-shim.c — LD_PRELOADed into event-worker when bench/run runs it under valgrind.
 *
 * libdispatch parks the main thread in _dispatch_sig_thread → sigsuspend(mask) with `mask` in its
 * read-only data. Debian 12's valgrind 3.19 edits the mask in place when it wraps the syscall, so it
 * dies of SIGSEGV ("VALGRIND INTERNAL ERROR: Valgrind received a signal 11 … Faulting address" in
 * libdispatch.so, whatever the tool, even --tool=none). This sigsuspend passes a writable copy of the
 * mask to the same system call: nothing else changes.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, (size_t)_NSIG / 8);
}
