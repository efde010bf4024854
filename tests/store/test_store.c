/*
 * test_store.c — the store's contract: round trip, key file rules, tamper,
 * swap and replay detection (DATA_LOSS for that wallet only), injected write
 * failures (UNAVAILABLE, nothing partial), group commit, and 10k wallets
 * surviving close/re-open.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cg_config.h"
#include "store_test_util.h"

/* Every open in this file goes to the backend under test (store_test_util.h). */
#define store_open(d, o, s, e, n) store_open((d), test_opts((d), (o), &(store_options){0}), s, e, n)

static store *open_ok(const char *dir, const store_options *opt)
{
    store *s = NULL;
    char err[256] = "";
    rt_status st = store_open(dir, opt, &s, err, sizeof err);
    if (st != RT_OK) fprintf(stderr, "store_open: %s (%s)\n", rt_status_name(st), err);
    assert_int_equal(st, RT_OK);
    return s;
}

static void put_expected(store *s, unsigned i, uint64_t v)
{
    uint8_t buf[300];
    size_t n = expected_rec(i, v, buf);
    rt_key k = wallet_key(i);
    assert_int_equal(store_put_sync(s, &k, buf, n, v), RT_OK);
}

static void check_rec(store *s, unsigned i, uint64_t v)
{
    uint8_t want[300], *got;
    size_t n = expected_rec(i, v, want), len;
    uint64_t ver;
    rt_key k = wallet_key(i);
    assert_int_equal(store_get(s, &k, &got, &len, &ver), RT_OK);
    assert_int_equal(ver, v);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(got);
}

static rt_status get_status(store *s, unsigned i)
{
    uint8_t *got;
    size_t len;
    uint64_t ver;
    rt_key k = wallet_key(i);
    rt_status st = store_get(s, &k, &got, &len, &ver);
    if (st == RT_OK) free(got);
    return st;
}

static mode_t mode_of(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s%s%s", dir, name ? "/" : "", name ? name : "");
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

static int count_cb(void *arg, const rt_key *key, uint64_t version)
{
    (void)key;
    (void)version;
    (*(unsigned *)arg)++;
    return 0;
}

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending, ok, unavailable, other;
} counter;

static void counter_init(counter *c, unsigned pending)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->pending = pending;
}

static void counter_done(void *arg, rt_status st)
{
    counter *c = arg;
    pthread_mutex_lock(&c->mu);
    if (st == RT_OK)
        c->ok++;
    else if (st == RT_UNAVAILABLE)
        c->unavailable++;
    else
        c->other++;
    if (--c->pending == 0) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void counter_wait(counter *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->pending)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *dir = tmp_store_dir();
    char sub[512];
    snprintf(sub, sizeof sub, "%s/data", dir);
    store *s = open_ok(sub, NULL);
    assert_int_equal(mode_of(sub, NULL), 0700);
    if (!test_on_pg()) {
        assert_int_equal(mode_of(sub, "data.mdb"), 0600);
        assert_int_equal(mode_of(sub, "lock.mdb"), 0600);
    }
    assert_int_equal(mode_of(sub, "master.key"), 0600);

    assert_int_equal(get_status(s, 1), RT_NOT_FOUND);
    put_expected(s, 1, 1);
    check_rec(s, 1, 1);
    put_expected(s, 1, 2);
    check_rec(s, 1, 2);
    put_expected(s, 2, 1);

    /* The version is a compare-and-set: stale and skipping writes are refused
     * and change nothing. */
    uint8_t buf[300];
    size_t n = expected_rec(1, 9, buf);
    rt_key k1 = wallet_key(1);
    assert_int_equal(store_put_sync(s, &k1, buf, n, 2), RT_FAILED_PRECONDITION);
    assert_int_equal(store_put_sync(s, &k1, buf, n, 1), RT_FAILED_PRECONDITION);
    assert_int_equal(store_put_sync(s, &k1, buf, n, 4), RT_FAILED_PRECONDITION);
    assert_int_equal(store_put_sync(s, &k1, buf, n, 0), RT_INVALID_ARGUMENT);
    check_rec(s, 1, 2);

    /* Empty records are records. */
    rt_key k3 = wallet_key(3);
    assert_int_equal(store_put_sync(s, &k3, NULL, 0, 1), RT_OK);
    uint8_t *got;
    size_t len;
    uint64_t ver;
    assert_int_equal(store_get(s, &k3, &got, &len, &ver), RT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(ver, 1);
    free(got);

    unsigned cnt = 0;
    assert_int_equal(store_iterate(s, count_cb, &cnt), RT_OK);
    assert_int_equal(cnt, 3);

    assert_int_equal(store_delete(s, &k3), RT_OK);
    assert_int_equal(store_delete(s, &k3), RT_NOT_FOUND);
    assert_int_equal(get_status(s, 3), RT_NOT_FOUND);

    /* Public metadata lives beside the records. */
    uint8_t mk[32] = {1, 2, 3}, *mv;
    size_t ml;
    assert_int_equal(store_get_meta(s, mk, &mv, &ml), RT_NOT_FOUND);
    assert_int_equal(store_put_meta(s, mk, (const uint8_t *)"hostkeys", 8), RT_OK);
    assert_int_equal(store_get_meta(s, mk, &mv, &ml), RT_OK);
    assert_int_equal(ml, 8);
    assert_memory_equal(mv, "hostkeys", 8);
    free(mv);

    /* The runtime's vtable sees the same records. */
    const rt_persist *p = store_persist(s);
    assert_int_equal(p->load(p->ud, &k1, &got, &len, &ver), RT_OK);
    assert_int_equal(ver, 2);
    free(got);
    assert_int_equal(p->load(p->ud, &k3, &got, &len, &ver), RT_NOT_FOUND);
    assert_int_equal(ver, 0);
    counter c;
    counter_init(&c, 2);
    n = expected_rec(1, 3, buf);
    p->save(p->ud, &k1, buf, n, 3, counter_done, &c);
    p->save(p->ud, &k1, buf, n, 3, counter_done, &c); /* stale */
    counter_wait(&c);
    assert_int_equal(c.ok, 1);
    assert_int_equal(c.other, 1);
    check_rec(s, 1, 3);
    store_close(s);

    /* Everything acknowledged survives a restart. */
    s = open_ok(sub, NULL);
    check_rec(s, 1, 3);
    check_rec(s, 2, 1);
    assert_int_equal(get_status(s, 3), RT_NOT_FOUND);
    assert_int_equal(store_get_meta(s, mk, &mv, &ml), RT_OK);
    free(mv);
    /* A deleted wallet starts again at version 1. */
    assert_int_equal(store_put_sync(s, &k3, NULL, 0, 1), RT_OK);
    store_close(s);
    rm_rf(dir);
}

static void test_key_file_rules(void **state)
{
    (void)state;
    char *dir = tmp_store_dir();
    char key[512], key2[512], moved[512], err[256];
    snprintf(key, sizeof key, "%s/master.key", dir);
    snprintf(moved, sizeof moved, "%s.moved", dir);
    snprintf(key2, sizeof key2, "/tmp/cgstore-otherkey-%d", (int)getpid());
    store *s = open_ok(dir, NULL);
    put_expected(s, 1, 1);
    store_close(s);

    /* Existing store without its key: a clear error, and no new key appears. */
    assert_int_equal(rename(key, moved), 0);
    s = NULL;
    assert_int_equal(store_open(dir, NULL, &s, err, sizeof err), RT_FAILED_PRECONDITION);
    assert_null(s);
    assert_non_null(strstr(err, "missing"));
    assert_int_not_equal(access(key, F_OK), 0);

    /* A configured key path: must exist, must be private, must be this store's. */
    store_options o = {.key_path = key2};
    unlink(key2);
    assert_int_equal(store_open(dir, &o, &s, err, sizeof err), RT_NOT_FOUND);
    FILE *f = fopen(key2, "w");
    assert_non_null(f);
    fwrite("0123456789abcdef0123456789abcdef", 1, 32, f);
    fclose(f);
    chmod(key2, 0644);
    assert_int_equal(store_open(dir, &o, &s, err, sizeof err), RT_PERMISSION_DENIED);
    chmod(key2, 0600);
    assert_int_equal(store_open(dir, &o, &s, err, sizeof err), RT_FAILED_PRECONDITION);
    assert_non_null(strstr(err, "does not belong"));
    unlink(key2);

    /* The moved key, configured by path, opens the store with its records. */
    o.key_path = moved;
    s = open_ok(dir, &o);
    check_rec(s, 1, 1);
    store_close(s);
    unlink(moved);
    rm_rf(dir);
}

/* Three wallets at known versions; returns the dir (store closed). */
static char *three_wallets(uint8_t *old1, size_t *old1_len)
{
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    put_expected(s, 1, 1);
    store_close(s);
    rt_key k1 = wallet_key(1);
    if (old1) assert_int_equal(raw_get(dir, "rec", k1.b, 32, old1, old1_len), 0);
    s = open_ok(dir, NULL);
    put_expected(s, 1, 2);
    put_expected(s, 2, 1);
    put_expected(s, 2, 2);
    put_expected(s, 3, 1);
    store_close(s);
    return dir;
}

static void test_corrupt_file(void **state)
{
    (void)state;
    if (test_on_pg()) skip(); /* LMDB's own file and map */
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    put_expected(s, 1, 1);
    store_close(s);
    /* Both LMDB meta pages garbage: a clean refusal, not a crash. */
    char p[600];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    FILE *f = fopen(p, "r+");
    assert_non_null(f);
    uint8_t junk[8192];
    memset(junk, 0xa5, sizeof junk);
    assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    char err[256];
    s = NULL;
    rt_status st = store_open(dir, NULL, &s, err, sizeof err);
    assert_int_not_equal(st, RT_OK);
    assert_null(s);
    rm_rf(dir);
}

static void test_tamper_flip(void **state)
{
    (void)state;
    uint8_t rec[512];
    size_t len = 0;
    rt_key k1 = wallet_key(1);
    char *dir = three_wallets(NULL, NULL);
    assert_int_equal(raw_get(dir, "rec", k1.b, 32, rec, &len), 0);
    /* Every region of the record matters: header (format, version), nonce,
     * ciphertext, tag. */
    size_t where[] = {0, 2, 4, 11, 12, 35, 36, 40, len - 17, len - 1};
    for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
        uint8_t bad[512];
        memcpy(bad, rec, len);
        bad[where[w]] ^= 0x01;
        assert_int_equal(raw_put(dir, "rec", k1.b, 32, bad, len), 0);
        store *s = open_ok(dir, NULL);
        assert_int_equal(get_status(s, 1), RT_DATA_LOSS);
        check_rec(s, 2, 2);
        check_rec(s, 3, 1);
        store_close(s);
    }
    /* Truncated record. */
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, rec, 20), 0);
    store *s = open_ok(dir, NULL);
    assert_int_equal(get_status(s, 1), RT_DATA_LOSS);
    check_rec(s, 2, 2);
    /* Still detected as lost until repaired; other wallets keep writing. */
    put_expected(s, 3, 2);
    store_close(s);
    /* Restoring the genuine bytes heals it: nothing else was damaged. */
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, rec, len), 0);
    s = open_ok(dir, NULL);
    check_rec(s, 1, 2);
    check_rec(s, 3, 2);
    store_close(s);
    rm_rf(dir);
}

static void test_tamper_swap(void **state)
{
    (void)state;
    uint8_t r1[512], r2[512];
    size_t l1 = 0, l2 = 0;
    rt_key k1 = wallet_key(1), k2 = wallet_key(2);
    char *dir = three_wallets(NULL, NULL); /* wallets 1 and 2 both at version 2 */
    assert_int_equal(raw_get(dir, "rec", k1.b, 32, r1, &l1), 0);
    assert_int_equal(raw_get(dir, "rec", k2.b, 32, r2, &l2), 0);
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, r2, l2), 0);
    assert_int_equal(raw_put(dir, "rec", k2.b, 32, r1, l1), 0);
    store *s = open_ok(dir, NULL);
    assert_int_equal(get_status(s, 1), RT_DATA_LOSS);
    assert_int_equal(get_status(s, 2), RT_DATA_LOSS);
    check_rec(s, 3, 1);
    store_close(s);

    /* A record planted for a wallet the index never heard of. */
    rt_key k9 = wallet_key(9);
    assert_int_equal(raw_put(dir, "rec", k9.b, 32, r1, l1), 0);
    s = open_ok(dir, NULL);
    assert_int_equal(get_status(s, 9), RT_DATA_LOSS);
    check_rec(s, 3, 1);
    store_close(s);
    rm_rf(dir);
}

static void test_tamper_replay(void **state)
{
    (void)state;
    uint8_t old[512], ver_now[8], ver_old[8];
    size_t ol = 0, vl = 0;
    rt_key k1 = wallet_key(1);
    char *dir = three_wallets(old, &ol); /* old = wallet 1 at version 1; now at 2 */

    /* Replaying the older (genuine, authenticating) record alone. */
    assert_int_equal(raw_get(dir, "ver", k1.b, 32, ver_now, &vl), 0);
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, old, ol), 0);
    store *s = open_ok(dir, NULL);
    assert_int_equal(get_status(s, 1), RT_DATA_LOSS);
    check_rec(s, 2, 2);
    check_rec(s, 3, 1);
    store_close(s);

    /* Relabelling the old record as version 2: the AD binds the version. */
    uint8_t relabel[512];
    memcpy(relabel, old, ol);
    relabel[4] = 2;
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, relabel, ol), 0);
    s = open_ok(dir, NULL);
    assert_int_equal(get_status(s, 1), RT_DATA_LOSS);
    check_rec(s, 2, 2);
    store_close(s);

    /* Replaying the old record together with its old index entry: the index
     * no longer matches its authenticated root, so the store refuses to open
     * rather than serve a rolled-back share. */
    assert_int_equal(raw_put(dir, "rec", k1.b, 32, old, ol), 0);
    uint64_t one = 1;
    for (int i = 0; i < 8; i++)
        ver_old[i] = (uint8_t)(one >> (8 * i));
    assert_int_equal(raw_put(dir, "ver", k1.b, 32, ver_old, 8), 0);
    char err[256];
    s = NULL;
    assert_int_equal(store_open(dir, NULL, &s, err, sizeof err), RT_DATA_LOSS);
    assert_null(s);
    assert_non_null(strstr(err, "rolled back"));

    /* Putting the current index entry back (record still old): opens, and only
     * wallet 1 is lost. */
    assert_int_equal(raw_put(dir, "ver", k1.b, 32, ver_now, 8), 0);
    s = open_ok(dir, NULL);
    assert_int_equal(get_status(s, 1), RT_DATA_LOSS);
    check_rec(s, 2, 2);
    check_rec(s, 3, 1);
    store_close(s);
    rm_rf(dir);
}

/* ------------------------------------------------- injected failures -- */

static void test_injected_write_failure(void **state)
{
    (void)state;
#if CG_FAULT_INJECTION
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    put_expected(s, 1, 1);
    put_expected(s, 2, 1);
    rt_key k1 = wallet_key(1);
    uint8_t before[512], after[512], buf[300];
    size_t bl = 0, al = 0;
    store_close(s);
    assert_int_equal(raw_get(dir, "rec", k1.b, 32, before, &bl), 0);
    s = open_ok(dir, NULL);

    /* EIO on the commit: UNAVAILABLE, previous durable record still loads. */
    assert_int_equal(store_inject_commit_failures(s, 1, EIO), RT_OK);
    size_t n = expected_rec(1, 2, buf);
    assert_int_equal(store_put_sync(s, &k1, buf, n, 2), RT_UNAVAILABLE);
    check_rec(s, 1, 1);
    /* No partial record: the file holds the very bytes it held before. */
    store_close(s);
    assert_int_equal(raw_get(dir, "rec", k1.b, 32, after, &al), 0);
    assert_int_equal(al, bl);
    assert_memory_equal(after, before, bl);
    s = open_ok(dir, NULL);

    /* ENOSPC hitting a whole group of concurrent puts (one batch or several):
     * all fail, none is visible. */
    assert_int_equal(store_inject_commit_failures(s, 1000, ENOSPC), RT_OK);
    counter c;
    counter_init(&c, 64);
    for (unsigned i = 100; i < 164; i++) {
        rt_key k = wallet_key(i);
        n = expected_rec(i, 1, buf);
        store_put(s, &k, buf, n, 1, counter_done, &c);
    }
    counter_wait(&c);
    assert_int_equal(c.unavailable, 64);
    for (unsigned i = 100; i < 164; i++)
        assert_int_equal(get_status(s, i), RT_NOT_FOUND);
    assert_int_equal(store_inject_commit_failures(s, 0, 0), RT_OK);
    store_stats stats;
    store_get_stats(s, &stats);
    assert_true(stats.commit_failures >= 1);

    /* The same version succeeds once the disk is back: the failed attempt
     * consumed nothing. */
    put_expected(s, 1, 2);
    check_rec(s, 2, 1);
    store_close(s);

    /* After a restart the index still authenticates (the failed batches left
     * no trace in it) and only acknowledged data is there. */
    s = open_ok(dir, NULL);
    check_rec(s, 1, 2);
    check_rec(s, 2, 1);
    for (unsigned i = 100; i < 164; i++)
        assert_int_equal(get_status(s, i), RT_NOT_FOUND);
    store_close(s);
    rm_rf(dir);
#else
    skip();
#endif
}

/* A real out-of-space condition (LMDB map full, no injection): the puts that
 * do not fit fail with UNAVAILABLE, everything acknowledged before is intact,
 * and the store keeps serving and re-opens with an authentic index. */
static void test_map_full(void **state)
{
    (void)state;
    if (test_on_pg()) skip(); /* LMDB's own file and map */
    char *dir = tmp_store_dir();
    store_options o = {.map_size = 1u << 20};
    store *s = open_ok(dir, &o);
    uint8_t *big = calloc(1, 64 << 10);
    assert_non_null(big);
    unsigned stored = 0;
    rt_status st = RT_OK;
    for (unsigned i = 0; i < 64 && st == RT_OK; i++) {
        rt_key k = wallet_key(500 + i);
        big[0] = (uint8_t)i;
        st = store_put_sync(s, &k, big, 64 << 10, 1);
        if (st == RT_OK) stored++;
    }
    assert_int_equal(st, RT_UNAVAILABLE);
    assert_true(stored > 0);
    assert_int_equal(get_status(s, 500 + stored), RT_NOT_FOUND);
    /* Small writes still fit and commit. */
    put_expected(s, 1, 1);
    store_close(s);
    s = open_ok(dir, &o);
    for (unsigned i = 0; i < stored; i++) {
        rt_key k = wallet_key(500 + i);
        uint8_t *got;
        size_t len;
        uint64_t ver;
        assert_int_equal(store_get(s, &k, &got, &len, &ver), RT_OK);
        assert_int_equal(len, 64 << 10);
        assert_int_equal(got[0], i);
        free(got);
    }
    check_rec(s, 1, 1);
    store_close(s);
    free(big);
    rm_rf(dir);
}

/* --------------------------------------------------------- group commit -- */

static void test_group_commit_batches(void **state)
{
    (void)state;
    char *dir = tmp_store_dir();
    for (int gc = 0; gc < 2; gc++) {
        store_options o = {.no_group_commit = !gc};
        store *s = open_ok(dir, &o);
        store_stats before, after;
        store_get_stats(s, &before);
        /* Asynchronous puts queue up behind the fsync of the commit in flight;
         * with group commit they ride together. */
        enum { N = 300 };
        counter c;
        counter_init(&c, N);
        uint8_t buf[300];
        for (unsigned i = 0; i < N; i++) {
            rt_key k = wallet_key(i);
            size_t n = expected_rec(i, (uint64_t)gc + 1, buf);
            store_put(s, &k, buf, n, (uint64_t)gc + 1, counter_done, &c);
        }
        counter_wait(&c);
        assert_int_equal(c.ok, N);
        store_get_stats(s, &after);
        assert_int_equal(after.puts - before.puts, N);
        if (gc)
            assert_true(after.commits - before.commits < N);
        else
            assert_int_equal(after.commits - before.commits, N);
        /* Two saves of one wallet in one batch keep their order. */
        unsigned w = 1000 + (unsigned)gc;
        rt_key kw = wallet_key(w);
        counter_init(&c, 3);
        size_t n = expected_rec(w, 1, buf);
        store_put(s, &kw, buf, n, 1, counter_done, &c);
        n = expected_rec(w, 2, buf);
        store_put(s, &kw, buf, n, 2, counter_done, &c);
        store_put(s, &kw, buf, n, 2, counter_done, &c); /* stale */
        counter_wait(&c);
        assert_int_equal(c.ok, 2);
        assert_int_equal(c.other, 1);
        check_rec(s, w, 2);
        store_close(s);
    }
    rm_rf(dir);
}

/* -------------------------------------------------- concurrent writers -- */

typedef struct writer_arg {
    store *s;
    unsigned id, rounds;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *a = p;
    for (unsigned r = 1; r <= a->rounds; r++) {
        for (unsigned w = 0; w < 4; w++) {
            unsigned i = a->id * 4 + w;
            uint8_t buf[300];
            size_t n = expected_rec(i, r, buf);
            rt_key k = wallet_key(i);
            if (store_put_sync(a->s, &k, buf, n, r) != RT_OK) abort();
            uint8_t *got;
            size_t len;
            uint64_t ver;
            if (store_get(a->s, &k, &got, &len, &ver) != RT_OK || ver != r || len != n ||
                memcmp(got, buf, n) != 0)
                abort();
            free(got);
        }
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    enum { T = 32 };
    unsigned rounds = CG_SANITIZE_THREAD ? 5 : 10;
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    pthread_t th[T];
    writer_arg a[T];
    for (unsigned t = 0; t < T; t++) {
        a[t] = (writer_arg){s, t, rounds};
        assert_int_equal(pthread_create(&th[t], NULL, writer_main, &a[t]), 0);
    }
    for (unsigned t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    store_close(s);
    s = open_ok(dir, NULL);
    for (unsigned i = 0; i < T * 4; i++)
        check_rec(s, i, rounds);
    store_close(s);
    rm_rf(dir);
}

/* ------------------------------------------------- compare-and-swap -- */

static uint64_t store_test_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void store_test_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

typedef struct cas_arg {
    store *s;
    unsigned wins;
} cas_arg;

/* Every thread tries to move the counter from each value it reads to the
 * next; a lost race re-reads. */
static void *cas_main(void *p)
{
    cas_arg *a = p;
    uint8_t key[32] = {0xca, 0x5};
    for (int i = 0; i < 50; i++) {
        for (;;) {
            uint8_t *cur = NULL;
            size_t n = 0;
            rt_status st = store_get_meta(a->s, key, &cur, &n);
            assert_true(st == RT_OK && n == 8);
            uint64_t v = store_test_u64(cur) + 1;
            uint8_t nv[8];
            store_test_put_u64(nv, v);
            st = store_cas_meta(a->s, key, cur, n, nv, 8);
            free(cur);
            if (st == RT_OK) {
                a->wins++;
                break;
            }
            assert_int_equal(st, RT_ABORTED);
        }
    }
    return NULL;
}

/* One-time tokens and quota counters are compare-and-swaps on metadata:
 * only the writer that saw the current value wins, so N increments by
 * racing threads leave exactly N. */
static void test_meta_cas(void **state)
{
    (void)state;
    enum { T = 4 };
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    uint8_t key[32] = {0xca, 0x5}, zero[8] = {0}, one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    /* Insert-if-absent, once. */
    assert_int_equal(store_cas_meta(s, key, NULL, 0, zero, 8), RT_OK);
    assert_int_equal(store_cas_meta(s, key, NULL, 0, one, 8), RT_ABORTED);
    /* A wrong expectation writes nothing. */
    assert_int_equal(store_cas_meta(s, key, one, 8, one, 8), RT_ABORTED);
    uint8_t *v;
    size_t n;
    assert_int_equal(store_get_meta(s, key, &v, &n), RT_OK);
    assert_int_equal(n, 8);
    assert_memory_equal(v, zero, 8);
    free(v);
    pthread_t th[T];
    cas_arg a[T];
    for (unsigned t = 0; t < T; t++) {
        a[t] = (cas_arg){s, 0};
        assert_int_equal(pthread_create(&th[t], NULL, cas_main, &a[t]), 0);
    }
    unsigned wins = 0;
    for (unsigned t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        wins += a[t].wins;
    }
    assert_int_equal(wins, T * 50);
    assert_int_equal(store_get_meta(s, key, &v, &n), RT_OK);
    assert_int_equal(store_test_u64(v), T * 50);
    free(v);
    store_close(s);
    rm_rf(dir);
}

typedef struct page_arg {
    rt_key got[8];
    unsigned n, max;
} page_arg;

static int page_cb(void *p, const rt_key *k, uint64_t version)
{
    (void)version;
    page_arg *a = p;
    a->got[a->n++] = *k;
    return a->n == a->max;
}

/* Paging: iterate_from resumes strictly after the last key of a page, in
 * key order, and visits every record exactly once. */
static void test_iterate_pages(void **state)
{
    (void)state;
    enum { N = 25 };
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    for (unsigned i = 0; i < N; i++)
        put_expected(s, i, 1);
    unsigned seen = 0;
    rt_key last;
    int have = 0;
    for (;;) {
        page_arg a = {.max = 8};
        assert_int_equal(store_iterate_from(s, have ? &last : NULL, page_cb, &a), RT_OK);
        for (unsigned i = 0; i < a.n; i++) {
            if (have || i) assert_true(memcmp(i ? a.got[i - 1].b : last.b, a.got[i].b, 32) < 0);
        }
        seen += a.n;
        if (a.n < a.max) break;
        last = a.got[a.n - 1];
        have = 1;
    }
    assert_int_equal(seen, N);
    store_close(s);
    rm_rf(dir);
}

/* ---------------------------------------------------------- 10k wallets -- */

static void test_10k_wallets(void **state)
{
    (void)state;
    enum { N = 10000 };
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    uint8_t buf[300];
    for (uint64_t v = 1; v <= 2; v++) {
        counter c;
        counter_init(&c, N);
        for (unsigned i = 0; i < N; i++) {
            rt_key k = wallet_key(i);
            size_t n = expected_rec(i, v, buf);
            store_put(s, &k, buf, n, v, counter_done, &c);
        }
        counter_wait(&c);
        assert_int_equal(c.ok, N);
        /* "Evict" everything: nothing in memory survives a close. */
        store_close(s);
        s = open_ok(dir, NULL);
        for (unsigned i = 0; i < N; i++)
            check_rec(s, i, v);
    }
    unsigned cnt = 0;
    assert_int_equal(store_iterate(s, count_cb, &cnt), RT_OK);
    assert_int_equal(cnt, N);
    store_close(s);
    rm_rf(dir);
}

/* Resident size of this process's mappings of data.mdb, from smaps. */
static long mdb_rss_kib(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    long kib = 0;
    int in_mdb = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perm[5];
        long v;
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) == 3) /* a mapping's header */
            in_mdb = strstr(line, "/data.mdb") != NULL;
        else if (in_mdb && sscanf(line, "Rss: %ld kB", &v) == 1)
            kib += v;
    }
    fclose(f);
    return kib;
}

/* Idle wallets must cost nothing resident: store_trim drops the file pages
 * reading them mapped in, and every record still reads back intact. */
static void test_trim_returns_file_pages(void **state)
{
    (void)state;
    if (test_on_pg()) skip(); /* LMDB's own file and map */
    enum { N = 4000 };
    char *dir = tmp_store_dir();
    store *s = open_ok(dir, NULL);
    counter c;
    counter_init(&c, N);
    uint8_t buf[300];
    for (unsigned i = 0; i < N; i++) {
        rt_key k = wallet_key(i);
        size_t n = expected_rec(i, 1, buf);
        store_put(s, &k, buf, n, 1, counter_done, &c);
    }
    counter_wait(&c);
    assert_int_equal(c.ok, N);
    for (unsigned i = 0; i < N; i++)
        check_rec(s, i, 1);
    long before = mdb_rss_kib();
    /* N records of ~300 bytes plus their index entries were read through the map. */
    assert_true(before >= (long)(N * 300 / 1024));
    assert_int_equal(store_trim(s), RT_OK);
    long after = mdb_rss_kib();
    assert_true(after <= before / 10);
    for (unsigned i = 0; i < N; i++)
        check_rec(s, i, 1);
    put_expected(s, 0, 2);
    check_rec(s, 0, 2);
    store_close(s);
    rm_rf(dir);
}

/* ---- store_wipe: the bytes are gone from the file ----------------------- */

static uint8_t *slurp_data_file(const char *dir, size_t *len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* How many of x's 32-byte windows (at every offset) occur anywhere in f. */
static size_t windows_found(const uint8_t *f, size_t fl, const uint8_t *x, size_t xl)
{
    size_t found = 0;
    for (size_t o = 0; o + 32 <= xl; o++)
        if (memmem(f, fl, x + o, 32)) found++;
    return found;
}

static size_t copies_of(const uint8_t *f, size_t fl, const uint8_t *x, size_t xl)
{
    size_t n = 0;
    for (const uint8_t *p = f; (p = memmem(p, fl - (size_t)(p - f), x, xl)); p++)
        n++;
    return n;
}

static void put_random(store *s, const rt_key *k, size_t n, uint64_t v)
{
    uint8_t *rec = malloc(n);
    assert_non_null(rec);
    for (size_t i = 0; i < n; i++)
        rec[i] = (uint8_t)rand();
    assert_int_equal(store_put_sync(s, k, rec, n, v), RT_OK);
    free(rec);
}

/*
 * After store_wipe no 32-byte window of the wallet's sealed record — of its
 * live version, nor of an older one, nor of the copies LMDB's copy on
 * write left on free pages when neighbouring records changed — remains
 * anywhere in data.mdb. A plain store_delete, for contrast, leaves its
 * record's bytes in the file. Small records (in leaf pages shared with
 * other records; a wallet's record is about this size) and large ones
 * (overflow pages of their own).
 */
static void test_wipe_overwrites_file(void **state)
{
    (void)state;
    if (test_on_pg()) {
        /* The row is deleted (old tuple versions wait for VACUUM). */
        char *dir = tmp_store_dir();
        store *s = open_ok(dir, NULL);
        rt_key k = wallet_key(100);
        put_random(s, &k, 700, 1);
        assert_int_equal(store_wipe(s, &k), RT_OK);
        assert_int_equal(get_status(s, 100), RT_NOT_FOUND);
        assert_int_equal(store_wipe(s, &k), RT_NOT_FOUND);
        store_close(s);
        rm_rf(dir);
        return;
    }
    static const size_t sizes[] = {200, 700, 5000};
    static uint8_t a1[8192], a2[8192], b[8192];
    size_t a1l = 0, a2l = 0, bl = 0, fl = 0;
    rt_key ka = wallet_key(100), kb = wallet_key(101), kc = wallet_key(102);
    srand(7);
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        char *dir = tmp_store_dir();
        store *s = open_ok(dir, NULL);
        put_random(s, &ka, sizes[z], 1);
        store_close(s);
        assert_int_equal(raw_get(dir, "rec", ka.b, 32, a1, &a1l), 0);
        s = open_ok(dir, NULL);
        put_random(s, &kb, sizes[z], 1);
        put_random(s, &ka, sizes[z], 2);
        put_random(s, &kc, sizes[z], 1);
        put_random(s, &kb, sizes[z], 2);
        store_close(s);
        assert_int_equal(raw_get(dir, "rec", ka.b, 32, a2, &a2l), 0);
        assert_int_equal(raw_get(dir, "rec", kb.b, 32, b, &bl), 0);
        uint8_t *f = slurp_data_file(dir, &fl);
        assert_int_equal(windows_found(f, fl, a2, a2l), a2l - 31); /* the live record is there */
        /* A small record shares its leaf: later puts beside it left copies
         * of it on free pages, which deleting the live one would not touch. */
        if (sizes[z] < 1000) assert_true(copies_of(f, fl, a2, a2l) >= 2);
        free(f);

        s = open_ok(dir, NULL);
        assert_int_equal(store_wipe(s, &ka), RT_OK);
        assert_int_equal(store_delete(s, &kb), RT_OK);
        assert_int_equal(store_wipe(s, &ka), RT_NOT_FOUND);
        assert_int_equal(get_status(s, 100), RT_NOT_FOUND);
        assert_int_equal(get_status(s, 102), RT_OK);
        store_close(s);
        f = slurp_data_file(dir, &fl);
        assert_int_equal(windows_found(f, fl, a2, a2l), 0);
        assert_int_equal(windows_found(f, fl, a1, a1l), 0);
        /* Deleting alone leaves the bytes on a free page. */
        assert_true(windows_found(f, fl, b, bl) > 0);
        free(f);

        /* The store opens (index and root agree), the wallet is gone and
         * can start again at version 1, the others are intact. */
        s = open_ok(dir, NULL);
        assert_int_equal(get_status(s, 100), RT_NOT_FOUND);
        assert_int_equal(get_status(s, 101), RT_NOT_FOUND);
        assert_int_equal(get_status(s, 102), RT_OK);
        put_random(s, &ka, 50, 1);
        assert_int_equal(get_status(s, 100), RT_OK);
        store_close(s);
        rm_rf(dir);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_key_file_rules),
        cmocka_unit_test(test_corrupt_file),
        cmocka_unit_test(test_tamper_flip),
        cmocka_unit_test(test_tamper_swap),
        cmocka_unit_test(test_tamper_replay),
        cmocka_unit_test(test_injected_write_failure),
        cmocka_unit_test(test_group_commit_batches),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test(test_10k_wallets),
        cmocka_unit_test(test_trim_returns_file_pages),
        cmocka_unit_test(test_meta_cas),
        cmocka_unit_test(test_iterate_pages),
        cmocka_unit_test(test_wipe_overwrites_file),
    };
    /* argv[1] = "concurrency": only the tests worth running under TSan. */
    if (argc > 1 && strcmp(argv[1], "concurrency") == 0) {
        const struct CMUnitTest conc[] = {
            cmocka_unit_test(test_injected_write_failure),
            cmocka_unit_test(test_group_commit_batches),
            cmocka_unit_test(test_concurrent_writers),
            cmocka_unit_test(test_map_full),
            cmocka_unit_test(test_meta_cas),
        };
        return cmocka_run_group_tests_name(
            test_on_pg() ? "store_pg_concurrency" : "store_concurrency", conc, NULL, NULL);
    }
    return cmocka_run_group_tests_name(test_on_pg() ? "store_pg" : "store", all, NULL, NULL);
}
