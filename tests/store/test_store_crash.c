/*
 * test_store_crash.c — startup recovery under kill -9.
 *
 * A forked child opens the store and runs many writer threads, each making
 * acknowledged (write-before-ack) puts and reporting every acknowledgement
 * through a pipe. The parent kills it with SIGKILL at a random moment (some
 * runs during the first start itself: key file and LMDB creation), then
 * re-opens the store and checks that every acknowledged write is there (at
 * that version or a later one the child had not reported yet) and that every
 * record in the store authenticates. Repeated on the same growing store.
 * Seed: CG_SEED env var (printed on each run for reproduction).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cg_config.h"
#include "store_test_util.h"

/* Every open in this file goes to the backend under test (store_test_util.h). */
#define store_open(d, o, s, e, n) store_open((d), test_opts((d), (o), &(store_options){0}), s, e, n)

enum { THREADS = 8, PER_THREAD = 4, WALLETS = THREADS * PER_THREAD, REPS = 60 };

typedef struct ack {
    uint32_t wallet;
    uint32_t pad;
    uint64_t version;
} ack;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- the child -- */

typedef struct child_thread {
    store *s;
    unsigned id;
    int fd;
} child_thread;

static void *child_writer(void *p)
{
    child_thread *c = p;
    uint64_t cur[PER_THREAD];
    for (unsigned j = 0; j < PER_THREAD; j++) {
        rt_key k = wallet_key(c->id * PER_THREAD + j);
        uint8_t *rec;
        size_t len;
        rt_status st = store_get(c->s, &k, &rec, &len, &cur[j]);
        if (st == RT_OK)
            free(rec);
        else if (st == RT_NOT_FOUND)
            cur[j] = 0;
        else
            _exit(3);
    }
    uint64_t stop = now_ms() + 10000; /* never outlive a parent that lost track */
    while (now_ms() < stop) {
        for (unsigned j = 0; j < PER_THREAD; j++) {
            unsigned w = c->id * PER_THREAD + j;
            uint8_t buf[300];
            size_t n = expected_rec(w, cur[j] + 1, buf);
            rt_key k = wallet_key(w);
            if (store_put_sync(c->s, &k, buf, n, cur[j] + 1) != RT_OK) _exit(4);
            cur[j]++;
            /* Only now is the write acknowledged; 16 bytes < PIPE_BUF: atomic. */
            ack a = {w, 0, cur[j]};
            if (write(c->fd, &a, sizeof a) != sizeof a) _exit(5);
        }
    }
    return NULL;
}

static _Noreturn void child_main(const char *dir, int fd)
{
    store *s;
    char err[256];
    if (store_open(dir, NULL, &s, err, sizeof err) != RT_OK) {
        fprintf(stderr, "child: store_open: %s\n", err);
        _exit(2);
    }
    pthread_t th[THREADS];
    child_thread ct[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        ct[t] = (child_thread){s, t, fd};
        if (pthread_create(&th[t], NULL, child_writer, &ct[t]) != 0) _exit(6);
    }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    _exit(0);
}

/* ---------------------------------------------------------- the parent -- */

/* Reads what the child reported: 1 = got bytes, 0 = nothing within timeout,
 * -1 = end of file (the child is gone and everything it wrote was read). */
static int drain(int fd, uint64_t acked[WALLETS], unsigned *nacks, int timeout_ms)
{
    static uint8_t partial[sizeof(ack)];
    static size_t have;
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0) return 0;
    uint8_t buf[4096];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) {
        have = 0; /* a torn report is not an acknowledgement */
        return -1;
    }
    for (ssize_t i = 0; i < r; i++) {
        partial[have++] = buf[i];
        if (have == sizeof(ack)) {
            ack a;
            memcpy(&a, partial, sizeof a);
            have = 0;
            assert_true(a.wallet < WALLETS);
            if (a.version > acked[a.wallet]) acked[a.wallet] = a.version;
            (*nacks)++;
        }
    }
    return 1;
}

typedef struct verify_ctx {
    store *s;
    unsigned records;
} verify_ctx;

static int verify_one(void *arg, const rt_key *key, uint64_t version)
{
    verify_ctx *v = arg;
    uint32_t w;
    memcpy(&w, key->b + 8, 4);
    assert_true(w < WALLETS);
    uint8_t want[300], *got;
    size_t n = expected_rec(w, version, want), len;
    uint64_t ver;
    assert_int_equal(store_get(v->s, key, &got, &len, &ver), RT_OK);
    assert_int_equal(ver, version);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(got);
    v->records++;
    return 0;
}

static void test_kill9_recovery(void **state)
{
    (void)state;
    const char *seed_env = getenv("CG_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "crash test seed %u (CG_SEED to reproduce)\n", seed);
    srand(seed);
    char *dir = tmp_store_dir();
    uint64_t acked[WALLETS] = {0};
    unsigned total_acks = 0, killed_before_ack = 0;

    for (unsigned rep = 0; rep < REPS; rep++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1]);
        }
        close(fds[1]);
        unsigned nacks = 0;
        uint64_t start = now_ms(), kill_at;
        if (rep % 4 == 0) {
            kill_at = start + (uint64_t)(rand() % 6); /* early: during open or first puts */
        } else {
            /* Wait for the first acknowledgement, then a random moment after it. */
            while (nacks == 0 && now_ms() < start + 5000)
                drain(fds[0], acked, &nacks, 5);
            kill_at = now_ms() + (uint64_t)(rand() % 30);
        }
        while (now_ms() < kill_at)
            drain(fds[0], acked, &nacks, (int)(kill_at - now_ms()));
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("child ended on its own (status %d) in rep %u", status, rep);
        /* Acks written before death are still in the pipe. */
        while (drain(fds[0], acked, &nacks, 1000) == 1) {
        }
        close(fds[0]);
        if (nacks == 0) killed_before_ack++;
        total_acks += nacks;

        /* Restart: every acknowledged write is there and authenticates. */
        store *s = NULL;
        char err[256] = "";
        rt_status st = store_open(dir, NULL, &s, err, sizeof err);
        if (st != RT_OK)
            fail_msg("rep %u: store_open after kill: %s (%s)", rep, rt_status_name(st), err);
        for (unsigned w = 0; w < WALLETS; w++) {
            if (!acked[w]) continue;
            rt_key k = wallet_key(w);
            uint8_t *got;
            size_t len;
            uint64_t ver;
            st = store_get(s, &k, &got, &len, &ver);
            if (st != RT_OK || ver < acked[w])
                fail_msg("rep %u wallet %u: acked v%llu, store has %s v%llu", rep, w,
                         (unsigned long long)acked[w], rt_status_name(st), (unsigned long long)ver);
            free(got);
            acked[w] = ver; /* the child may have committed past its last report */
        }
        verify_ctx v = {s, 0};
        assert_int_equal(store_iterate(s, verify_one, &v), RT_OK);
        store_close(s);
    }
    fprintf(stderr, "%u kills, %u acknowledged writes verified, %u kills before any ack\n", REPS,
            total_acks, killed_before_ack);
    assert_true(total_acks > REPS); /* the test exercised acknowledged writes */
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_recovery),
    };
    return cmocka_run_group_tests_name(test_on_pg() ? "store_pg_crash" : "store_crash", tests, NULL,
                                       NULL);
}
