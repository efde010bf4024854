/*
 * test_store_pg.c — what only the PostgreSQL backend has: leases between
 * nodes and the fencing of commits, tested with two store handles (two
 * "nodes") on one real database (tests/store/with_pg.sh starts it):
 * takeover after expiry, a commit made under a stale epoch refused by the
 * database, the lost-lease callback, hand-over on release, a restart
 * retaking its leases, a node with another master key refused, and the
 * database going away and coming back.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cg_config.h"
#include "store_test_util.h"

#define TTL 600

static _Atomic int lost_a;
#if CG_FAULT_INJECTION
static _Atomic int lost_b;
#endif

static void on_lost(void *ud, const rt_key *w)
{
    (void)w;
    atomic_fetch_add((_Atomic int *)ud, 1);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static store *node(const char *dir, const char *name, _Atomic int *lost, const char *key_path)
{
    store_options o = {.backend = STORE_POSTGRES,
                       .pg_dsn = test_pg_db(dir),
                       .node_id = name,
                       .node_url = name,
                       .lease_ttl_ms = TTL,
                       .key_path = key_path,
                       .on_lease_lost = on_lost,
                       .lease_ud = (void *)lost};
    store *s = NULL;
    char err[256] = "";
    rt_status st = store_open(dir, &o, &s, err, sizeof err);
    if (st != RT_OK) fprintf(stderr, "store_open %s: %s (%s)\n", name, rt_status_name(st), err);
    assert_int_equal(st, RT_OK);
    return s;
}

static rt_status put(store *s, unsigned i, uint64_t v)
{
    uint8_t buf[300];
    size_t n = expected_rec(i, v, buf);
    rt_key k = wallet_key(i);
    return store_put_sync(s, &k, buf, n, v);
}

#if CG_FAULT_INJECTION
static long sql_long(const char *dir, const char *q)
{
    PGconn *c = PQconnectdb(test_pg_db(dir));
    PGresult *r = PQexec(c, q);
    long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

typedef struct bg_put {
    store *s;
    unsigned i;
    uint64_t v;
    rt_status st;
} bg_put;

static void *bg_put_main(void *a)
{
    bg_put *b = a;
    b->st = put(b->s, b->i, b->v);
    return NULL;
}

#endif

static void test_takeover_and_fencing(void **state)
{
    (void)state;
#if CG_FAULT_INJECTION
    char *dir = tmp_store_dir();
    atomic_store(&lost_a, 0);
    atomic_store(&lost_b, 0);
    store *a = node(dir, "node-a", &lost_a, NULL), *b = node(dir, "node-b", &lost_b, NULL);
    rt_key w = wallet_key(1);
    store_lease la, lb;
    assert_int_equal(store_lease_acquire(a, &w, &la), RT_OK);
    assert_int_equal(la.held, 1);
    assert_int_equal(store_lease_acquire(b, &w, &lb), RT_OK);
    assert_int_equal(lb.held, 0);
    assert_string_equal(lb.owner_url, "node-a");
    assert_int_equal(put(a, 1, 1), RT_OK);
    /* B's put for A's wallet is refused: it never commits under A's lease. */
    assert_int_equal(put(b, 1, 2), RT_ABORTED);
    /* Renewal keeps A's lease alive well past one ttl. */
    sleep_ms(3 * TTL);
    assert_true(store_lease_valid(a, &w));
    assert_int_equal(store_lease_acquire(b, &w, &lb), RT_OK);
    assert_int_equal(lb.held, 0);

    /* A queues a put under its epoch, but the commit is held up (another
     * session holds the index root); meanwhile A stops renewing (paused,
     * cut off) and B takes the expired lease over. When A's commit runs,
     * the database refuses it: fencing. */
    PGconn *hold = PQconnectdb(test_pg_db(dir));
    PQclear(PQexec(hold, "BEGIN"));
    PQclear(PQexec(hold, "SELECT v FROM cg_sys WHERE k = 'root' FOR UPDATE"));
    bg_put bp = {a, 1, 2, RT_OK};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bg_put_main, &bp), 0);
    sleep_ms(100); /* the put is queued, its epoch taken, its commit blocked */
    assert_int_equal(store_inject_lease_pause(a, 1), RT_OK);
    sleep_ms(TTL + 200);
    assert_false(store_lease_valid(a, &w)); /* A's own view expired first */
    assert_int_equal(store_lease_acquire(b, &w, &lb), RT_OK);
    assert_int_equal(lb.held, 1);
    assert_int_equal(lb.epoch, la.epoch + 1);
    PQclear(PQexec(hold, "ROLLBACK"));
    PQfinish(hold);
    pthread_join(th, NULL);
    assert_int_equal(bp.st, RT_ABORTED);
    store_stats sa, sb;
    store_get_stats(a, &sa);
    store_get_stats(b, &sb);
    assert_int_equal(sa.fence_refusals, 1); /* the blocked commit */
    assert_int_equal(sb.fence_refusals, 1); /* its put for a wallet of A */
    assert_int_equal(sb.leases_taken_over, 1);
    /* B commits on from the durable record; the database's log shows one
     * owner per epoch. */
    assert_int_equal(put(b, 1, 2), RT_OK);
    assert_int_equal(
        sql_long(dir, "SELECT count(*) FROM (SELECT wallet, epoch FROM cg_commit_log GROUP BY 1, 2 "
                      "HAVING count(DISTINCT owner) > 1) x"),
        0);
    assert_int_equal(sql_long(dir, "SELECT count(*) FROM cg_commit_log"), 2);
    /* A resumes: it learns it lost the lease (the daemon ends the
     * activation), and its requests now go to B. */
    assert_int_equal(store_inject_lease_pause(a, 0), RT_OK);
    for (int i = 0; i < 50 && !atomic_load(&lost_a); i++)
        sleep_ms(50);
    assert_int_equal(atomic_load(&lost_a), 1);
    assert_int_equal(store_lease_acquire(a, &w, &la), RT_OK);
    assert_int_equal(la.held, 0);
    assert_string_equal(la.owner_url, "node-b");

    /* Graceful hand-over: B gives its leases back, A takes at once. */
    assert_int_equal(store_lease_release_all(b), RT_OK);
    assert_int_equal(store_lease_acquire(a, &w, &la), RT_OK);
    assert_int_equal(la.held, 1);
    assert_int_equal(la.epoch, lb.epoch + 1);
    assert_int_equal(put(a, 1, 3), RT_OK);
    store_close(b);

    /* A restart of A (same node id) retakes its wallet with a new epoch,
     * at once: its earlier leases were given back when it stopped. */
    uint64_t before = la.epoch;
    store_close(a);
    a = node(dir, "node-a", &lost_a, NULL);
    assert_int_equal(store_lease_acquire(a, &w, &la), RT_OK);
    assert_int_equal(la.held, 1);
    assert_int_equal(la.epoch, before + 1);
    uint8_t *got;
    size_t len;
    uint64_t ver;
    assert_int_equal(store_get(a, &w, &got, &len, &ver), RT_OK);
    assert_int_equal(ver, 3);
    free(got);
    store_close(a);
    rm_rf(dir);
#else
    skip();
#endif
}

/* A node whose master key is not the cluster's refuses to start. */
static void test_other_master_key(void **state)
{
    (void)state;
    char *dir = tmp_store_dir();
    store *a = node(dir, "node-a", &lost_a, NULL);
    assert_int_equal(put(a, 1, 1), RT_OK);
    char kp[512];
    snprintf(kp, sizeof kp, "%s/other.key", dir);
    FILE *f = fopen(kp, "w");
    assert_non_null(f);
    fwrite("0123456789abcdef0123456789abcdef", 1, 32, f);
    fclose(f);
    chmod(kp, 0600);
    store_options o = {
        .backend = STORE_POSTGRES, .pg_dsn = test_pg_db(dir), .node_id = "node-c", .key_path = kp};
    store *c = NULL;
    char err[256];
    assert_int_equal(store_open(dir, &o, &c, err, sizeof err), RT_FAILED_PRECONDITION);
    assert_null(c);
    assert_non_null(strstr(err, "does not belong"));
    /* And a fresh directory without any key never invents one for an
     * existing cluster database. */
    char *dir2 = tmp_store_dir();
    o.key_path = NULL;
    o.pg_dsn = test_pg_db(dir);
    assert_int_equal(store_open(dir2, &o, &c, err, sizeof err), RT_FAILED_PRECONDITION);
    assert_non_null(strstr(err, "missing"));
    store_close(a);
    rm_rf(dir2);
    rm_rf(dir);
}

static void pg_ctl(const char *what)
{
    const char *tool = getenv("CG_TEST_PG_TOOL"), *pdir = getenv("CG_TEST_PG_DIR"),
               *port = getenv("CG_TEST_PG_PORT");
    assert_non_null(tool);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' %s >/dev/null", tool, what, pdir,
             strcmp(what, "start") ? "" : port);
    assert_int_equal(system(cmd), 0);
}

/* The database goes away: puts fail with UNAVAILABLE and nothing of them
 * is acknowledged; the store says it is unreachable; when the database is
 * back the same handle serves again. */
static void test_database_down(void **state)
{
    (void)state;
    char *dir = tmp_store_dir();
    store *a = node(dir, "node-a", &lost_a, NULL);
    assert_int_equal(put(a, 7, 1), RT_OK);
    assert_true(store_reachable(a));
    pg_ctl("stop");
    assert_int_equal(put(a, 7, 2), RT_UNAVAILABLE);
    for (int i = 0; i < 40 && store_reachable(a); i++)
        sleep_ms(100);
    assert_false(store_reachable(a));
    uint8_t *got;
    size_t len;
    uint64_t ver;
    rt_key k = wallet_key(7);
    assert_int_equal(store_get(a, &k, &got, &len, &ver), RT_UNAVAILABLE);
    pg_ctl("start");
    rt_status st = RT_UNAVAILABLE;
    for (int i = 0; i < 50 && st != RT_OK; i++) {
        st = put(a, 7, 2);
        if (st != RT_OK) sleep_ms(100);
    }
    assert_int_equal(st, RT_OK);
    assert_int_equal(store_get(a, &k, &got, &len, &ver), RT_OK);
    assert_int_equal(ver, 2); /* the refused put left nothing behind */
    free(got);
    for (int i = 0; i < 40 && !store_reachable(a); i++)
        sleep_ms(100);
    assert_true(store_reachable(a));
    store_close(a);
    rm_rf(dir);
}

int main(void)
{
    if (!test_on_pg()) {
        fprintf(stderr, "SKIP: CG_TEST_PG_DSN not set (run through tests/store/with_pg.sh)\n");
        return 77;
    }
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_takeover_and_fencing),
        cmocka_unit_test(test_other_master_key),
        cmocka_unit_test(test_database_down),
    };
    return cmocka_run_group_tests_name("store_pg_cluster", all, NULL, NULL);
}
