#define _GNU_SOURCE
#include "CWarrenSystem.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of <linux/sched/types.h>, version 1 (SCHED_ATTR_SIZE_VER1, 56 bytes): glibc
 * 2.36 does not declare it. */
struct warren_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
    uint32_t sched_util_min;
    uint32_t sched_util_max;
};

static int read_attr(struct warren_sched_attr *attr) {
    memset(attr, 0, sizeof *attr);
    return syscall(SYS_sched_getattr, 0, attr, (unsigned int)sizeof *attr, 0) == 0 ? 0 : errno;
}

int warren_set_thread_slice(uint64_t nanoseconds) {
    struct warren_sched_attr attr;
    int rc = read_attr(&attr);
    if (rc != 0) return rc;
    /* Same policy and nice (a lower nice would need CAP_SYS_NICE), flags cleared (they only
     * describe the read), only the slice changes. For SCHED_OTHER/BATCH/IDLE the kernel reads
     * sched_runtime as the slice since 6.12 and ignores it before. */
    attr.size = sizeof attr;
    attr.sched_flags = 0;
    attr.sched_runtime = nanoseconds;
    return syscall(SYS_sched_setattr, 0, &attr, 0) == 0 ? 0 : errno;
}

int64_t warren_thread_slice(void) {
    struct warren_sched_attr attr;
    int rc = read_attr(&attr);
    return rc != 0 ? -(int64_t)rc : (int64_t)attr.sched_runtime;
}
