#ifndef WARREN_CWARRENSYSTEM_H
#define WARREN_CWARRENSYSTEM_H

#include <stdint.h>

/// sched_setattr(2) on the calling thread: its time slice becomes `nanoseconds` (the kernel clamps
/// it to 0.1–100 ms), its policy and nice value stay as they are. Returns 0 or an errno value.
/// glibc 2.36 (Debian 12) has no wrapper for sched_setattr, and Swift cannot call the variadic
/// syscall(2): hence this file.
int warren_set_thread_slice(uint64_t nanoseconds);

/// The calling thread's time slice in nanoseconds (sched_getattr's sched_runtime): since Linux 6.12
/// the slice in effect (the kernel's default unless one was set), 0 before; -errno when it cannot
/// be read.
int64_t warren_thread_slice(void);

#endif
