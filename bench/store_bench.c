/*
 * store_bench.c — durable acknowledged writes/s with and without group commit,
 * and record restore latency with a cold and a warm page cache.
 *
 *   store_bench [dir] [seconds-per-point]
 *
 * dir must be on the disk under test (default: a scratch dir in the build
 * tree; not tmpfs, where fsync is free). One JSON line per figure:
 *   {"workload":"durable_acks","writers":W,"group_commit":B,"acks_per_s":N}
 *   {"workload":"restore","cache":"cold"|"warm","us":N}   (median store_get)
 *   {"workload":"open","wallets":N,"us":N}   (store_open, index root check)
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cg_config.h"
#include "store.h"

#define REC_LEN 512 /* about a wallet snapshot: shares, commitments, session table */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static rt_key key_of(unsigned i)
{
    rt_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &i, sizeof i);
    k.b[31] = 0xb5;
    return k;
}

static store *open_or_die(const char *dir, const store_options *o)
{
    store *s;
    char err[256];
    rt_status st = store_open(dir, o, &s, err, sizeof err);
    if (st != RT_OK) {
        fprintf(stderr, "store_open %s: %s (%s)\n", dir, rt_status_name(st), err);
        exit(1);
    }
    return s;
}

static void wipe_dir(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) exit(1);
}

/* ------------------------------------------------------- durable_acks -- */

typedef struct writer {
    store *s;
    unsigned id;
    atomic_bool *stop;
    uint64_t acks;
    pthread_t th;
} writer;

static void *writer_main(void *p)
{
    writer *w = p;
    uint8_t rec[REC_LEN];
    memset(rec, (int)w->id, sizeof rec);
    rt_key k = key_of(w->id);
    for (uint64_t v = 1; !atomic_load(w->stop); v++) {
        rec[0] = (uint8_t)v;
        if (store_put_sync(w->s, &k, rec, sizeof rec, v) != RT_OK) {
            fprintf(stderr, "put failed\n");
            exit(1);
        }
        w->acks++;
    }
    return NULL;
}

static void durable_acks(const char *base, unsigned nw, bool gc, double secs)
{
    char dir[800];
    snprintf(dir, sizeof dir, "%s/acks-%u-%d", base, nw, gc);
    wipe_dir(dir);
    store_options o = {.no_group_commit = !gc};
    store *s = open_or_die(dir, &o);
    atomic_bool stop = false;
    writer *ws = calloc(nw, sizeof *ws);
    double t0 = now_s();
    for (unsigned i = 0; i < nw; i++) {
        ws[i] = (writer){.s = s, .id = i, .stop = &stop};
        if (pthread_create(&ws[i].th, NULL, writer_main, &ws[i]) != 0) exit(1);
    }
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&stop, true);
    uint64_t total = 0;
    for (unsigned i = 0; i < nw; i++) {
        pthread_join(ws[i].th, NULL);
        total += ws[i].acks;
    }
    double el = now_s() - t0;
    store_stats st;
    store_get_stats(s, &st);
    store_close(s);
    free(ws);
    wipe_dir(dir);
    printf("{\"workload\":\"durable_acks\",\"writers\":%u,\"group_commit\":%s,\"acks_per_s\":%.0f,"
           "\"commits_per_s\":%.0f,\"max_batch\":%llu}\n",
           nw, gc ? "true" : "false", (double)total / el, (double)st.commits / el,
           (unsigned long long)st.max_batch_seen);
    fflush(stdout);
}

/* ------------------------------------------------------------ restore -- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void drop_cache(const char *dir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    int fd = open(p, O_RDONLY);
    if (fd < 0) exit(1);
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static double timed_get(store *s, unsigned i)
{
    rt_key k = key_of(i);
    uint8_t *rec;
    size_t len;
    uint64_t ver;
    double t0 = now_s();
    rt_status st = store_get(s, &k, &rec, &len, &ver);
    double us = (now_s() - t0) * 1e6;
    if (st != RT_OK || len != REC_LEN) {
        fprintf(stderr, "restore failed: %s\n", rt_status_name(st));
        exit(1);
    }
    free(rec);
    return us;
}

typedef struct loader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending, failed;
} loader;

static void loader_done(void *arg, rt_status st)
{
    loader *l = arg;
    pthread_mutex_lock(&l->mu);
    l->failed += st != RT_OK;
    if (--l->pending == 0) pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void restore(const char *base)
{
    enum { N = 20000, WARM = 2000, COLD = 60 };
    char dir[800];
    snprintf(dir, sizeof dir, "%s/restore", base);
    wipe_dir(dir);
    store *s = open_or_die(dir, NULL);
    uint8_t rec[REC_LEN];
    /* Asynchronous puts: the setup itself rides group commit. */
    loader ld = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .pending = N};
    for (unsigned j = 0; j < N; j++) {
        rt_key k = key_of(j);
        memset(rec, (int)j, sizeof rec);
        store_put(s, &k, rec, sizeof rec, 1, loader_done, &ld);
    }
    pthread_mutex_lock(&ld.mu);
    while (ld.pending)
        pthread_cond_wait(&ld.cv, &ld.mu);
    pthread_mutex_unlock(&ld.mu);
    if (ld.failed) exit(1);
    static double samples[WARM];
    srand(42);
    for (unsigned i = 0; i < 200; i++)
        timed_get(s, (unsigned)rand() % N); /* warm up */
    for (unsigned i = 0; i < WARM; i++)
        samples[i] = timed_get(s, (unsigned)rand() % N);
    qsort(samples, WARM, sizeof samples[0], cmp_double);
    double warm = samples[WARM / 2];
    store_close(s);

    /* Opening verifies the whole version index against its root: O(wallets). */
    double t0 = now_s();
    s = open_or_die(dir, NULL);
    double open_us = (now_s() - t0) * 1e6;
    store_close(s);

    for (unsigned i = 0; i < COLD; i++) {
        drop_cache(dir);
        s = open_or_die(dir, NULL);
        samples[i] = timed_get(s, (unsigned)rand() % N);
        store_close(s);
    }
    qsort(samples, COLD, sizeof samples[0], cmp_double);
    printf("{\"workload\":\"restore\",\"cache\":\"cold\",\"us\":%.1f}\n", samples[COLD / 2]);
    printf("{\"workload\":\"restore\",\"cache\":\"warm\",\"us\":%.1f}\n", warm);
    printf("{\"workload\":\"open\",\"wallets\":%u,\"us\":%.0f}\n", N, open_us);
    fflush(stdout);
    wipe_dir(dir);
}

int main(int argc, char **argv)
{
    char base[512];
    if (argc > 1)
        snprintf(base, sizeof base, "%s", argv[1]);
    else
        snprintf(base, sizeof base, "%s/bench-store-data", CG_BUILD_ROOT);
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    mkdir(base, 0700);
    const unsigned writers[] = {1, 16, 256};
    for (unsigned i = 0; i < 3; i++) {
        durable_acks(base, writers[i], true, secs);
        durable_acks(base, writers[i], false, secs);
    }
    restore(base);
    wipe_dir(base);
    return 0;
}
