/*
 * chaos_preload.c — storage failures for the chaos run, injected at the
 * operating-system boundary: LD_PRELOADed into the daemon, it makes fsync /
 * fdatasync report EIO, exactly what a failing disk does to LMDB's commit.
 *
 * SIGUSR2 arms one failure, valid for 2 s (so an armed failure that finds
 * no commit to hit does not linger into an unrelated wallet's commit later).
 * Nothing in the daemon knows about it: the store's own injection hook
 * (store_inject_commit_failures) is not reachable from outside the process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static atomic_int armed;
static _Atomic int64_t armed_until_ns;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void on_usr2(int sig)
{
    (void)sig;
    atomic_store(&armed_until_ns, now_ns() + 2000000000);
    atomic_fetch_add(&armed, 1);
}

__attribute__((constructor)) static void chaos_preload_init(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}

static int take_failure(void)
{
    int a = atomic_load(&armed);
    if (a <= 0) return 0;
    if (now_ns() > atomic_load(&armed_until_ns)) {
        atomic_store(&armed, 0);
        return 0;
    }
    while (a > 0)
        if (atomic_compare_exchange_weak(&armed, &a, a - 1)) return 1;
    return 0;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (take_failure()) {
        errno = EIO;
        return -1;
    }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (take_failure()) {
        errno = EIO;
        return -1;
    }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
