/*
 * store_pg.c — the PostgreSQL backend: sealed records, the version index
 * and its root, public metadata and the per-wallet leases of a cluster,
 * all in one database that every node opens.
 *
 * Tables (created at open, under an advisory lock so nodes starting
 * together do not race):
 *   cg_rec(wallet, sealed)        the sealed records, as the front made them
 *   cg_ver(wallet, version)       the version index (what LMDB keeps in "ver")
 *   cg_sys(k, v)                  "keycheck": a constant sealed under the
 *                                 master key; "root": acc || MAC(acc)
 *   cg_meta(k, v)                 public metadata
 *   cg_lease(wallet, owner, url, epoch, expires)
 *   cg_commit_log(wallet, version, owner, epoch, at)   one row per commit
 *
 * Why the root row is locked by every commit: the set hash over the index
 * is only meaningful if every index change folds into it exactly once.
 * With several nodes committing, the accumulator cannot live in one
 * node's memory: each commit reads it under SELECT ... FOR UPDATE, folds
 * its changes in and writes it back in the same transaction. That
 * serializes commits cluster-wide, one short row lock per batch, which
 * group commit amortizes.
 *
 * Why leases are rows with epochs: see DESIGN.md ("Cluster"). Every put
 * is checked, inside its commit transaction, against the lease row it was
 * made under (this node, that epoch, not expired), which it locks FOR
 * SHARE, so a takeover waits for the commit instead of racing it.
 *
 * Connections: the committer and the lease thread each own one; reads and
 * metadata share a small pool. A broken connection is reset on its next
 * use, so a database that comes back is used again without a restart; in
 * between every call fails fast with UNAVAILABLE (connect and statement
 * timeouts, TCP keepalives).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "store_int.h"

#define LBUCKETS 4096
#define ADVISORY_KEY "7074001"

typedef struct lease_ent {
    struct lease_ent *next;
    rt_key key;
    uint64_t epoch;
    uint64_t deadline; /* monotonic ms: held while now < deadline */
    uint64_t acq_at;   /* monotonic ms the statement that took it returned */
    uint64_t last_used;
} lease_ent;

struct store_pg {
    char dsn[2048];
    char node[160];
    char url[256];
    uint64_t ttl, margin, idle_ms;
    PGconn *commit; /* committer thread only */
    PGconn *lease;  /* lease thread only (and open/close) */
    PGconn **pool;
    unsigned npool, nfree;
    int *busy;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;

    pthread_mutex_t lmu; /* the lease table */
    lease_ent *lb[LBUCKETS];
    uint64_t nleases;

    pthread_t thr;
    int thr_started;
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    int quit;
    _Atomic int reachable;
    _Atomic int paused; /* fault injection: the lease thread stands still */
    store_lease_lost_cb lost_cb;
    void *lost_ud;
    _Atomic uint64_t acquired, taken_over, lost, fence_refusals;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return v;
}

/* ---------------------------------------------------------- connections -- */

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static PGconn *connect_db(store_pg *p)
{
    /* Defaults first: a value in the operator's DSN (last) overrides them. */
    static const char *const kw[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                                     "keepalives_interval", "keepalives_count", "options",
                                     "application_name",    "dbname",           NULL};
    const char *val[] = {"3",         "1",    "5", "2", "2", "-c statement_timeout=10000",
                         "cosignerd", p->dsn, NULL};
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    if (c) PQsetNoticeProcessor(c, quiet, NULL); /* "already exists, skipping" is no news */
    return c;
}

/* The connection in *c, reconnected if it broke. NULL: the database is unreachable. */
static PGconn *usable(store_pg *p, PGconn **c)
{
    if (*c && PQstatus(*c) == CONNECTION_OK) return *c;
    if (*c) {
        PQreset(*c);
        if (PQstatus(*c) == CONNECTION_OK) return *c;
        PQfinish(*c);
        *c = NULL;
    }
    *c = connect_db(p);
    if (!*c) atomic_store(&p->reachable, 0);
    return *c;
}

static PGconn **pool_take(store_pg *p)
{
    pthread_mutex_lock(&p->pool_mu);
    while (!p->nfree)
        pthread_cond_wait(&p->pool_cv, &p->pool_mu);
    unsigned i = 0;
    while (p->busy[i])
        i++;
    p->busy[i] = 1;
    p->nfree--;
    pthread_mutex_unlock(&p->pool_mu);
    return &p->pool[i];
}

static void pool_give(store_pg *p, PGconn **c)
{
    pthread_mutex_lock(&p->pool_mu);
    p->busy[c - p->pool] = 0;
    p->nfree++;
    pthread_cond_signal(&p->pool_cv);
    pthread_mutex_unlock(&p->pool_mu);
}

/* Runs one statement with text parameters (lens NULL) or binary ones, binary
 * results. NULL result or a failed status both mean "failed": the caller
 * maps to UNAVAILABLE. */
static PGresult *run(PGconn *c, const char *sql, int n, const char *const *v, const int *lens,
                     const int *fmts)
{
    return PQexecParams(c, sql, n, NULL, v, lens, fmts, 1);
}

static int ok(PGresult *r)
{
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int good = ok(r);
    PQclear(r);
    return good;
}

/* --------------------------------------------------------------- open -- */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS cg_rec (wallet bytea PRIMARY KEY, sealed bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cg_ver (wallet bytea PRIMARY KEY, version bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cg_meta (k bytea PRIMARY KEY, v bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cg_sys (k text PRIMARY KEY, v bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cg_lease (wallet bytea PRIMARY KEY, owner text NOT NULL,"
    " url text NOT NULL, epoch bigint NOT NULL, expires timestamptz NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cg_lease_owner ON cg_lease (owner);"
    "CREATE TABLE IF NOT EXISTS cg_commit_log (id bigserial PRIMARY KEY, wallet bytea NOT NULL,"
    " version bigint NOT NULL, owner text NOT NULL, epoch bigint NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now());";

static void write_root_buf(const store *s, const uint8_t acc[ACC_LEN], uint8_t out[ACC_LEN + 32])
{
    memcpy(out, acc, ACC_LEN);
    store_root_tag(s, acc, out + ACC_LEN);
}

/* Creates the tables and, in an empty database, the key check and the
 * root; then checks both and the whole index in one snapshot. */
static rt_status check_schema(store *s, PGconn *c, char *err, size_t errn)
{
    if (!exec_ok(c, "BEGIN") || !exec_ok(c, "SELECT pg_advisory_xact_lock(" ADVISORY_KEY ")") ||
        !exec_ok(c, SCHEMA)) {
        store_seterr(err, errn, "postgres: cannot create the tables: %s", PQerrorMessage(c));
        exec_ok(c, "ROLLBACK");
        return RT_UNAVAILABLE;
    }
    PGresult *r = run(c, "SELECT v FROM cg_sys WHERE k = 'keycheck'", 0, NULL, NULL, NULL);
    if (!ok(r)) {
        PQclear(r);
        exec_ok(c, "ROLLBACK");
        store_seterr(err, errn, "postgres: %s", PQerrorMessage(c));
        return RT_UNAVAILABLE;
    }
    int have = PQntuples(r) == 1;
    PQclear(r);
    if (!have) {
        r = run(c, "SELECT count(*) FROM cg_ver", 0, NULL, NULL, NULL);
        int empty = ok(r) && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8 &&
                    be64(PQgetvalue(r, 0, 0)) == 0;
        PQclear(r);
        if (!empty) {
            exec_ok(c, "ROLLBACK");
            store_seterr(err, errn, "database has records but no key check: refusing to open");
            return RT_DATA_LOSS;
        }
        uint8_t kc[STORE_KEYCHECK_LEN], root[ACC_LEN + 32], zero[ACC_LEN] = {0};
        store_keycheck_seal(s, kc);
        write_root_buf(s, zero, root);
        const char *v[2] = {(const char *)kc, (const char *)root};
        int l[2] = {(int)sizeof kc, (int)sizeof root}, f[2] = {1, 1};
        r = run(c,
                "INSERT INTO cg_sys (k, v) VALUES ('keycheck', $1), ('root', $2) "
                "ON CONFLICT (k) DO NOTHING",
                2, v, l, f);
        int good = ok(r);
        PQclear(r);
        if (!good) {
            exec_ok(c, "ROLLBACK");
            store_seterr(err, errn, "postgres: %s", PQerrorMessage(c));
            return RT_UNAVAILABLE;
        }
    }
    if (!exec_ok(c, "COMMIT")) {
        store_seterr(err, errn, "postgres: %s", PQerrorMessage(c));
        return RT_UNAVAILABLE;
    }

    /* One snapshot: the key check, the root, the whole index. */
    rt_status st = RT_OK;
    if (!exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) return RT_UNAVAILABLE;
    r = run(c, "SELECT k, v FROM cg_sys WHERE k IN ('keycheck', 'root')", 0, NULL, NULL, NULL);
    const char *kc = NULL, *root = NULL;
    int kcl = 0, rootl = 0;
    for (int i = 0; ok(r) && i < PQntuples(r); i++) {
        if (!strcmp(PQgetvalue(r, i, 0), "keycheck")) {
            kc = PQgetvalue(r, i, 1);
            kcl = PQgetlength(r, i, 1);
        } else {
            root = PQgetvalue(r, i, 1);
            rootl = PQgetlength(r, i, 1);
        }
    }
    if (!ok(r)) {
        st = RT_UNAVAILABLE;
        store_seterr(err, errn, "postgres: %s", PQerrorMessage(c));
    } else if (!kc || !store_keycheck_ok(s, (const uint8_t *)kc, (size_t)kcl)) {
        st = RT_FAILED_PRECONDITION;
        store_seterr(err, errn,
                     "master key does not belong to this store (the cluster's database)");
    } else if (!root || rootl != ACC_LEN + 32) {
        st = RT_DATA_LOSS;
        store_seterr(err, errn, "version index root missing or malformed");
    }
    uint8_t want[ACC_LEN + 32];
    if (st == RT_OK) memcpy(want, root, sizeof want);
    PQclear(r);
    if (st == RT_OK) {
        r = run(c, "SELECT wallet, version FROM cg_ver", 0, NULL, NULL, NULL);
        uint8_t acc[ACC_LEN] = {0}, t[ACC_LEN], tag[32];
        int bad = !ok(r);
        for (int i = 0; !bad && i < PQntuples(r); i++) {
            if (PQgetlength(r, i, 0) != STORE_KEY_LEN || PQgetlength(r, i, 1) != 8) {
                bad = 2;
                break;
            }
            store_idx_term(s, (const uint8_t *)PQgetvalue(r, i, 0), be64(PQgetvalue(r, i, 1)), t);
            store_acc_xor(acc, t);
        }
        PQclear(r);
        store_root_tag(s, acc, tag);
        if (bad == 1) {
            st = RT_UNAVAILABLE;
            store_seterr(err, errn, "postgres: %s", PQerrorMessage(c));
        } else if (bad || sodium_memcmp(acc, want, ACC_LEN) ||
                   sodium_memcmp(tag, want + ACC_LEN, 32)) {
            st = RT_DATA_LOSS;
            store_seterr(err, errn,
                         "version index fails authentication: records were rolled back or the "
                         "index was tampered with; refusing to serve from it");
        }
    }
    exec_ok(c, "ROLLBACK");
    return st;
}

static void *lease_main(void *arg);

int store_pg_probe(const store_options *opt)
{
    store_pg p = {0};
    if (!opt->pg_dsn || snprintf(p.dsn, sizeof p.dsn, "%s", opt->pg_dsn) >= (int)sizeof p.dsn)
        return -1;
    PGconn *c = connect_db(&p);
    sodium_memzero(p.dsn, sizeof p.dsn);
    if (!c) return -1;
    PGresult *r = run(c, "SELECT 1 FROM information_schema.tables WHERE table_name = 'cg_sys'", 0,
                      NULL, NULL, NULL);
    int have = ok(r) ? PQntuples(r) > 0 : -1;
    PQclear(r);
    if (have > 0) {
        r = run(c, "SELECT 1 FROM cg_sys WHERE k = 'keycheck'", 0, NULL, NULL, NULL);
        have = ok(r) ? PQntuples(r) > 0 : -1;
        PQclear(r);
    }
    PQfinish(c);
    return have;
}

rt_status store_pg_open(store *s, const store_options *opt, char *err, size_t errn)
{
    if (!opt->pg_dsn || !*opt->pg_dsn || !opt->node_id || !*opt->node_id) {
        store_seterr(err, errn, "postgres backend needs pg_dsn and node_id");
        return RT_INVALID_ARGUMENT;
    }
    store_pg *p = calloc(1, sizeof *p);
    if (!p) return RT_RESOURCE_EXHAUSTED;
    if (snprintf(p->dsn, sizeof p->dsn, "%s", opt->pg_dsn) >= (int)sizeof p->dsn ||
        snprintf(p->node, sizeof p->node, "%s", opt->node_id) >= (int)sizeof p->node ||
        snprintf(p->url, sizeof p->url, "%s", opt->node_url ? opt->node_url : "") >=
            (int)sizeof p->url) {
        free(p);
        store_seterr(err, errn, "pg_dsn, node_id or node_url too long");
        return RT_INVALID_ARGUMENT;
    }
    p->ttl = opt->lease_ttl_ms ? opt->lease_ttl_ms : 5000;
    p->margin = p->ttl / 5;
    p->idle_ms = opt->lease_idle_ms ? opt->lease_idle_ms : 10 * 60 * 1000;
    p->lost_cb = opt->on_lease_lost;
    p->lost_ud = opt->lease_ud;
    p->npool = opt->pg_pool ? opt->pg_pool : 4;
    if (p->npool < 2) p->npool = 2; /* store_iterate's callback may read: two at once */
    p->pool = calloc(p->npool, sizeof *p->pool);
    p->busy = calloc(p->npool, sizeof *p->busy);
    pthread_mutex_init(&p->pool_mu, NULL);
    pthread_cond_init(&p->pool_cv, NULL);
    pthread_mutex_init(&p->lmu, NULL);
    pthread_mutex_init(&p->tmu, NULL);
    pthread_cond_init(&p->tcv, NULL);
    p->nfree = p->npool;
    s->pg = p;
    rt_status st = RT_UNAVAILABLE;
    if (!p->pool || !p->busy) {
        st = RT_RESOURCE_EXHAUSTED;
        goto fail;
    }
    p->lease = connect_db(p);
    if (!p->lease) {
        PGconn *c = PQconnectdb(p->dsn); /* only for the reason */
        store_seterr(err, errn, "cannot connect to the database: %s",
                     c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        goto fail;
    }
    if ((st = check_schema(s, p->lease, err, errn)) != RT_OK) goto fail;
    /* Leases a previous run of this node left: nobody serves them now, so
     * let the other nodes take them at once instead of after the ttl. */
    const char *v[1] = {p->node};
    PQclear(run(p->lease,
                "UPDATE cg_lease SET expires = now() - interval '1 millisecond' "
                "WHERE owner = $1 AND expires > now()",
                1, v, NULL, NULL));
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %" PRIu64, p->ttl / 2 ? p->ttl / 2 : 1);
    exec_ok(p->lease, set); /* renewal must not outlive the leases it renews */
    atomic_store(&p->reachable, 1);
    if (pthread_create(&p->thr, NULL, lease_main, s) != 0) {
        st = RT_RESOURCE_EXHAUSTED;
        store_seterr(err, errn, "cannot start the lease thread");
        goto fail;
    }
    p->thr_started = 1;
    return RT_OK;
fail:
    store_pg_close(s);
    return st;
}

static void drop_all_leases(store_pg *p)
{
    pthread_mutex_lock(&p->lmu);
    for (unsigned b = 0; b < LBUCKETS; b++)
        for (lease_ent *e = p->lb[b], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    memset(p->lb, 0, sizeof p->lb);
    p->nleases = 0;
    pthread_mutex_unlock(&p->lmu);
}

void store_pg_close(store *s)
{
    store_pg *p = s->pg;
    if (!p) return;
    if (p->thr_started) {
        pthread_mutex_lock(&p->tmu);
        p->quit = 1;
        pthread_cond_signal(&p->tcv);
        pthread_mutex_unlock(&p->tmu);
        pthread_join(p->thr, NULL);
        /* Graceful: the other nodes take this node's wallets at once. */
        store_pg_lease_release_all(s);
    }
    drop_all_leases(p);
    if (p->commit) PQfinish(p->commit);
    if (p->lease) PQfinish(p->lease);
    for (unsigned i = 0; p->pool && i < p->npool; i++)
        if (p->pool[i]) PQfinish(p->pool[i]);
    free(p->pool);
    free(p->busy);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_cond_destroy(&p->pool_cv);
    pthread_mutex_destroy(&p->lmu);
    pthread_mutex_destroy(&p->tmu);
    pthread_cond_destroy(&p->tcv);
    sodium_memzero(p->dsn, sizeof p->dsn); /* may hold a password */
    free(p);
    s->pg = NULL;
}

/* ------------------------------------------------------------ records -- */

rt_status store_pg_get(store *s, const rt_key *key, uint8_t **sealed, size_t *len,
                       uint64_t *version)
{
    store_pg *p = s->pg;
    PGconn **cp = pool_take(p);
    PGconn *c = usable(p, cp);
    rt_status st = RT_UNAVAILABLE;
    if (c) {
        const char *v[1] = {(const char *)key->b};
        int l[1] = {RT_KEY_LEN}, f[1] = {1};
        PGresult *r = run(c,
                          "SELECT (SELECT version FROM cg_ver WHERE wallet = $1),"
                          " (SELECT sealed FROM cg_rec WHERE wallet = $1)",
                          1, v, l, f);
        if (ok(r) && PQntuples(r) == 1) {
            int nover = PQgetisnull(r, 0, 0), norec = PQgetisnull(r, 0, 1);
            if (nover && norec) {
                st = RT_NOT_FOUND;
            } else if (nover || norec || PQgetlength(r, 0, 0) != 8) {
                st = RT_DATA_LOSS; /* planted, or deleted behind the index */
            } else {
                size_t n = (size_t)PQgetlength(r, 0, 1);
                *sealed = malloc(n ? n : 1);
                if (!*sealed) {
                    st = RT_RESOURCE_EXHAUSTED;
                } else {
                    memcpy(*sealed, PQgetvalue(r, 0, 1), n);
                    *len = n;
                    *version = be64(PQgetvalue(r, 0, 0));
                    st = RT_OK;
                }
            }
        }
        PQclear(r);
    }
    pool_give(p, cp);
    return st;
}

/* In pages of ITER_PAGE rows, so a caller that stops early (a listing's
 * page) does not pull the whole table into memory. */
#define ITER_PAGE 1000 /* = the LIMIT in the queries below */

rt_status store_pg_iterate(store *s, const rt_key *after, store_iter_cb cb, void *arg)
{
    store_pg *p = s->pg;
    uint8_t from[RT_KEY_LEN];
    int have_from = after != NULL;
    if (after) memcpy(from, after->b, RT_KEY_LEN);
    for (;;) {
        PGconn **cp = pool_take(p);
        PGconn *c = usable(p, cp);
        const char *v[1] = {(const char *)from};
        int l[1] = {RT_KEY_LEN}, f[1] = {1};
        PGresult *r = NULL;
        if (c)
            r = have_from ? run(c,
                                "SELECT wallet, version FROM cg_ver WHERE wallet > $1 "
                                "ORDER BY wallet LIMIT 1000",
                                1, v, l, f)
                          : run(c,
                                "SELECT wallet, version FROM cg_ver ORDER BY wallet "
                                "LIMIT 1000",
                                0, NULL, NULL, NULL);
        int good = ok(r);
        pool_give(p, cp); /* before the callbacks: they may read */
        if (!good) {
            PQclear(r);
            return RT_UNAVAILABLE;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows; i++) {
            if (PQgetlength(r, i, 0) != RT_KEY_LEN || PQgetlength(r, i, 1) != 8) {
                PQclear(r);
                return RT_DATA_LOSS;
            }
            rt_key k;
            memcpy(k.b, PQgetvalue(r, i, 0), RT_KEY_LEN);
            if (cb(arg, &k, be64(PQgetvalue(r, i, 1)))) {
                PQclear(r);
                return RT_OK;
            }
            memcpy(from, k.b, RT_KEY_LEN);
            have_from = 1;
        }
        PQclear(r);
        if (rows < ITER_PAGE) return RT_OK;
    }
}

rt_status store_pg_cas_meta(store *s, const uint8_t *key, const uint8_t *expect, size_t expect_len,
                            const uint8_t *val, size_t len)
{
    store_pg *p = s->pg;
    PGconn **cp = pool_take(p);
    PGconn *c = usable(p, cp);
    rt_status st = RT_UNAVAILABLE;
    if (c) {
        /* One statement each: PostgreSQL re-checks the WHERE of an UPDATE
         * against the newest row version under its row lock, and the
         * INSERT's conflict check is on the primary key, so either is a
         * true compare-and-swap across nodes. */
        const uint8_t *e = expect ? expect : (const uint8_t *)"";
        const char *v[3] = {(const char *)key, (const char *)(val ? val : (const uint8_t *)""),
                            (const char *)e};
        int l[3] = {STORE_KEY_LEN, (int)len, (int)expect_len}, f[3] = {1, 1, 1};
        PGresult *r =
            expect ? run(c, "UPDATE cg_meta SET v = $2 WHERE k = $1 AND v = $3", 3, v, l, f)
                   : run(c, "INSERT INTO cg_meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING",
                         2, v, l, f);
        if (ok(r)) st = strcmp(PQcmdTuples(r), "1") ? RT_ABORTED : RT_OK;
        PQclear(r);
    }
    pool_give(p, cp);
    return st;
}

rt_status store_pg_meta(store *s, int op, const uint8_t *key, const uint8_t *val, size_t len,
                        uint8_t **out, size_t *out_len)
{
    store_pg *p = s->pg;
    PGconn **cp = pool_take(p);
    PGconn *c = usable(p, cp);
    rt_status st = RT_UNAVAILABLE;
    if (c) {
        const char *v[2] = {(const char *)key, (const char *)(val ? val : (const uint8_t *)"")};
        int l[2] = {STORE_KEY_LEN, (int)len}, f[2] = {1, 1};
        static const char *const sql[3] = {
            "SELECT v FROM cg_meta WHERE k = $1",
            "INSERT INTO cg_meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = $2",
            "DELETE FROM cg_meta WHERE k = $1"};
        PGresult *r = run(c, sql[op], op == 1 ? 2 : 1, v, l, f);
        if (ok(r)) {
            if (op == 0) {
                if (PQntuples(r) != 1) {
                    st = RT_NOT_FOUND;
                } else if ((size_t)PQgetlength(r, 0, 0) > STORE_MAX_META) {
                    st = RT_DATA_LOSS;
                } else {
                    size_t n = (size_t)PQgetlength(r, 0, 0);
                    if (!(*out = malloc(n ? n : 1))) {
                        st = RT_RESOURCE_EXHAUSTED;
                    } else {
                        memcpy(*out, PQgetvalue(r, 0, 0), n);
                        *out_len = n;
                        st = RT_OK;
                    }
                }
            } else {
                st = op == 2 && !strcmp(PQcmdTuples(r), "0") ? RT_NOT_FOUND : RT_OK;
            }
        }
        PQclear(r);
    }
    pool_give(p, cp);
    return st;
}

/* ------------------------------------------------------------- commit -- */

/* Applies one request inside the batch's transaction. Returns 0 when the
 * transaction broke (the whole batch fails), 1 otherwise (r->st says how
 * this request went). */
static int apply_req(store *s, PGconn *c, req *r, uint8_t acc[ACC_LEN])
{
    store_pg *p = s->pg;
    char ep[24];
    snprintf(ep, sizeof ep, "%" PRIu64, r->epoch);
    const char *v[5] = {(const char *)r->key.b, p->node, ep, NULL, NULL};
    int l[5] = {RT_KEY_LEN, 0, 0, 0, 0}, f[5] = {1, 0, 0, 1, 0};
    /* Fencing: the lease this put was made under must still be this
     * node's, at that epoch, unexpired. FOR KEY SHARE holds off a takeover
     * (which locks the row FOR UPDATE) until this transaction ends, but not
     * the owner's own renewal (a plain update of expires): renewal waiting
     * on commits, or deadlocking with a batch, would cost the very leases
     * the batch commits under. */
    int fenced = !r->leased;
    if (!fenced) {
        PGresult *q = run(c,
                          "SELECT 1 FROM cg_lease WHERE wallet = $1 AND owner = $2 AND epoch = $3 "
                          "AND expires > now() FOR KEY SHARE",
                          3, v, l, f);
        if (!ok(q)) {
            PQclear(q);
            return 0;
        }
        fenced = PQntuples(q) != 1;
        PQclear(q);
    }
    if (fenced) {
        atomic_fetch_add(&p->fence_refusals, 1);
        r->st = RT_ABORTED;
        return 1;
    }
    PGresult *q = run(c, "SELECT version FROM cg_ver WHERE wallet = $1 FOR UPDATE", 1, v, l, f);
    if (!ok(q)) {
        PQclear(q);
        return 0;
    }
    uint64_t cur = 0;
    if (PQntuples(q) == 1) {
        if (PQgetlength(q, 0, 0) != 8) {
            PQclear(q);
            r->st = RT_DATA_LOSS;
            return 1;
        }
        cur = be64(PQgetvalue(q, 0, 0));
    }
    PQclear(q);
    uint8_t t[ACC_LEN];
    if (r->kind == REQ_DELETE) {
        if (!cur) {
            r->st = RT_NOT_FOUND;
            return 1;
        }
        q = run(c,
                "WITH a AS (DELETE FROM cg_rec WHERE wallet = $1) "
                "DELETE FROM cg_ver WHERE wallet = $1",
                1, v, l, f);
        int good = ok(q);
        PQclear(q);
        if (!good) return 0;
        store_idx_term(s, r->key.b, cur, t);
        store_acc_xor(acc, t);
        r->st = RT_OK;
        return 1;
    }
    if (r->version != cur + 1) {
        r->st = RT_FAILED_PRECONDITION;
        return 1;
    }
    char ver[24];
    snprintf(ver, sizeof ver, "%" PRIu64, r->version);
    v[3] = (const char *)r->sealed;
    l[3] = (int)r->sealed_len;
    v[4] = ver;
    q = run(c,
            "WITH a AS (INSERT INTO cg_rec (wallet, sealed) VALUES ($1, $4) "
            "  ON CONFLICT (wallet) DO UPDATE SET sealed = EXCLUDED.sealed), "
            "b AS (INSERT INTO cg_ver (wallet, version) VALUES ($1, $5::bigint) "
            "  ON CONFLICT (wallet) DO UPDATE SET version = EXCLUDED.version) "
            "INSERT INTO cg_commit_log (wallet, version, owner, epoch) "
            "VALUES ($1, $5::bigint, $2, $3::bigint)",
            5, v, l, f);
    int good = ok(q);
    PQclear(q);
    if (!good) return 0;
    if (cur) {
        store_idx_term(s, r->key.b, cur, t);
        store_acc_xor(acc, t);
    }
    store_idx_term(s, r->key.b, r->version, t);
    store_acc_xor(acc, t);
    r->st = RT_OK;
    return 1;
}

void store_pg_commit_batch(store *s, req *batch, unsigned n)
{
    store_pg *p = s->pg;
    PGconn *c = usable(p, &p->commit);
    int good = c && exec_ok(c, "BEGIN");
    uint8_t root[ACC_LEN + 32], acc[ACC_LEN], tag[32];
    int root_bad = 0;
    if (good) {
        PGresult *r =
            run(c, "SELECT v FROM cg_sys WHERE k = 'root' FOR UPDATE", 0, NULL, NULL, NULL);
        good = ok(r) && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == (int)sizeof root;
        if (good) {
            memcpy(root, PQgetvalue(r, 0, 0), sizeof root);
            store_root_tag(s, root, tag);
            /* A root that does not authenticate is never extended: that
             * would launder a tampered index into a valid one. */
            if (sodium_memcmp(tag, root + ACC_LEN, 32)) good = 0, root_bad = 1;
        }
        PQclear(r);
    }
    memcpy(acc, root, ACC_LEN);
    for (req *r = batch; good && r; r = r->next)
        good = apply_req(s, c, r, acc);
    if (good) {
        write_root_buf(s, acc, root);
        const char *v[1] = {(const char *)root};
        int l[1] = {(int)sizeof root}, f[1] = {1};
        PGresult *r = run(c, "UPDATE cg_sys SET v = $1 WHERE k = 'root'", 1, v, l, f);
        good = ok(r);
        PQclear(r);
    }
    int ierr;
    if (good && store_take_injected_failure(s, &ierr)) good = 0;
    if (good) good = exec_ok(c, "COMMIT");
    if (!good) {
        if (c && PQstatus(c) == CONNECTION_OK) exec_ok(c, "ROLLBACK");
        /* Decisions made inside the aborted transaction are void too. */
        for (req *r = batch; r; r = r->next)
            r->st = root_bad ? RT_DATA_LOSS : RT_UNAVAILABLE;
    }
    unsigned okn = 0;
    for (req *r = batch; good && r; r = r->next)
        okn += r->st == RT_OK && r->kind == REQ_PUT;
    pthread_mutex_lock(&s->mu);
    if (good) {
        s->stats.commits++;
        s->stats.puts += okn;
    } else {
        s->stats.commit_failures++;
    }
    if (n > s->stats.max_batch_seen) s->stats.max_batch_seen = n;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------- leases -- */

static unsigned bucket(const rt_key *k)
{
    uint32_t h;
    memcpy(&h, k->b, 4); /* wallet ids are hashes: any 4 bytes are uniform */
    return h % LBUCKETS;
}

/* Under lmu. */
static lease_ent **find_slot(store_pg *p, const rt_key *k)
{
    lease_ent **e = &p->lb[bucket(k)];
    while (*e && memcmp((*e)->key.b, k->b, RT_KEY_LEN))
        e = &(*e)->next;
    return e;
}

rt_status store_pg_lease_acquire(store *s, const rt_key *key, store_lease *out)
{
    store_pg *p = s->pg;
    memset(out, 0, sizeof *out);
    uint64_t now = mono_ms();
    pthread_mutex_lock(&p->lmu);
    lease_ent *e = *find_slot(p, key);
    if (e && now < e->deadline) {
        e->last_used = now;
        out->held = 1;
        out->epoch = e->epoch;
        pthread_mutex_unlock(&p->lmu);
        return RT_OK;
    }
    pthread_mutex_unlock(&p->lmu);

    PGconn **cp = pool_take(p);
    PGconn *c = usable(p, cp);
    rt_status st = RT_UNAVAILABLE;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu64, p->ttl);
    const char *v[4] = {(const char *)key->b, p->node, p->url, ttl};
    int l[4] = {RT_KEY_LEN, 0, 0, 0}, f[4] = {1, 0, 0, 0};
    for (int attempt = 0; c && attempt < 3 && st == RT_UNAVAILABLE; attempt++) {
        uint64_t t0 = mono_ms();
        /* The row is locked FOR UPDATE before it is judged: a takeover
         * waits for every commit still fenced on the old epoch. */
        if (!exec_ok(c, "BEGIN")) break;
        PGresult *r = run(c,
                          "SELECT owner, url, epoch, expires <= now() FROM cg_lease "
                          "WHERE wallet = $1 FOR UPDATE",
                          1, v, l, f);
        if (!ok(r)) {
            PQclear(r);
            exec_ok(c, "ROLLBACK");
            continue;
        }
        int row = PQntuples(r) == 1 && PQgetlength(r, 0, 2) == 8 && PQgetlength(r, 0, 3) == 1;
        int mine = row && (size_t)PQgetlength(r, 0, 0) == strlen(p->node) &&
                   !memcmp(PQgetvalue(r, 0, 0), p->node, strlen(p->node));
        int expired = row && PQgetvalue(r, 0, 3)[0];
        if (row && !mine && !expired) {
            /* Another node's, alive: tell the caller where. */
            int n = PQgetlength(r, 0, 1);
            if (n >= (int)sizeof out->owner_url) n = (int)sizeof out->owner_url - 1;
            memcpy(out->owner_url, PQgetvalue(r, 0, 1), (size_t)n);
            out->owner_url[n] = 0;
            out->epoch = be64(PQgetvalue(r, 0, 2));
            out->held = 0;
            PQclear(r);
            st = exec_ok(c, "COMMIT") ? RT_OK : RT_UNAVAILABLE;
            break;
        }
        PQclear(r);
        r = run(c,
                row ? "UPDATE cg_lease SET owner = $2, url = $3, epoch = epoch + 1, "
                      "expires = now() + $4::bigint * interval '1 millisecond' "
                      "WHERE wallet = $1 RETURNING epoch"
                    : "INSERT INTO cg_lease (wallet, owner, url, epoch, expires) "
                      "VALUES ($1, $2, $3, 1, now() + $4::bigint * interval '1 millisecond') "
                      "ON CONFLICT (wallet) DO NOTHING RETURNING epoch",
                4, v, l, f);
        int got = ok(r) && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8;
        uint64_t ep = got ? be64(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (!got || !exec_ok(c, "COMMIT")) {
            /* A new wallet's row inserted by another node meanwhile: the
             * next attempt sees and locks it. */
            exec_ok(c, "ROLLBACK");
            continue;
        }
        atomic_fetch_add(row && !mine ? &p->taken_over : &p->acquired, 1);
        uint64_t done = mono_ms();
        pthread_mutex_lock(&p->lmu);
        lease_ent **slot = find_slot(p, key);
        if (!*slot && (*slot = calloc(1, sizeof **slot))) {
            (*slot)->key = *key;
            p->nleases++;
        }
        if (*slot) {
            (*slot)->epoch = ep;
            (*slot)->deadline = t0 + p->ttl - p->margin;
            (*slot)->acq_at = done;
            (*slot)->last_used = done;
        }
        pthread_mutex_unlock(&p->lmu);
        out->held = 1;
        out->epoch = ep;
        st = RT_OK;
    }
    pool_give(p, cp);
    if (st == RT_OK) atomic_store(&p->reachable, 1);
    return st;
}

int store_pg_lease_valid(store *s, const rt_key *key)
{
    store_pg *p = s->pg;
    uint64_t now = mono_ms();
    pthread_mutex_lock(&p->lmu);
    lease_ent *e = *find_slot(p, key);
    int v = e && now < e->deadline;
    pthread_mutex_unlock(&p->lmu);
    return v;
}

void store_pg_lease_of(store *s, const rt_key *key, req *r)
{
    store_lease l;
    /* A put for a wallet this node does not hold takes the lease first (as
     * a request would): never commits under someone else's, and the
     * version check stops a stale activation even after a retake. */
    if (store_pg_lease_acquire(s, key, &l) == RT_OK && l.held) {
        r->leased = 1;
        r->epoch = l.epoch;
    }
}

static rt_status release_row(store_pg *p, PGconn *c, const rt_key *key, uint64_t epoch)
{
    char ep[24];
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    const char *v[3] = {(const char *)key->b, p->node, ep};
    int l[3] = {RT_KEY_LEN, 0, 0}, f[3] = {1, 0, 0};
    PGresult *r = run(c,
                      "UPDATE cg_lease SET expires = now() - interval '1 millisecond' "
                      "WHERE wallet = $1 AND owner = $2 AND epoch = $3::bigint",
                      3, v, l, f);
    rt_status st = ok(r) ? RT_OK : RT_UNAVAILABLE;
    PQclear(r);
    return st;
}

rt_status store_pg_lease_release(store *s, const rt_key *key)
{
    store_pg *p = s->pg;
    pthread_mutex_lock(&p->lmu);
    lease_ent **slot = find_slot(p, key), *e = *slot;
    if (e) {
        *slot = e->next;
        p->nleases--;
    }
    pthread_mutex_unlock(&p->lmu);
    if (!e) return RT_NOT_FOUND;
    PGconn **cp = pool_take(p);
    PGconn *c = usable(p, cp);
    rt_status st = c ? release_row(p, c, key, e->epoch) : RT_UNAVAILABLE;
    pool_give(p, cp);
    free(e);
    return st;
}

rt_status store_pg_lease_release_all(store *s)
{
    store_pg *p = s->pg;
    drop_all_leases(p);
    PGconn **cp = pool_take(p);
    PGconn *c = usable(p, cp);
    rt_status st = RT_UNAVAILABLE;
    if (c) {
        const char *v[1] = {p->node};
        PGresult *r = run(c,
                          "UPDATE cg_lease SET expires = now() - interval '1 millisecond' "
                          "WHERE owner = $1 AND expires > now()",
                          1, v, NULL, NULL);
        st = ok(r) ? RT_OK : RT_UNAVAILABLE;
        PQclear(r);
    }
    pool_give(p, cp);
    return st;
}

void store_pg_pause(store *s, int on)
{
    atomic_store(&s->pg->paused, on);
}

int store_pg_reachable(store *s)
{
    return atomic_load(&s->pg->reachable);
}

void store_pg_stats(store *s, store_stats *out)
{
    store_pg *p = s->pg;
    pthread_mutex_lock(&p->lmu);
    out->leases_held = p->nleases;
    pthread_mutex_unlock(&p->lmu);
    out->leases_acquired = atomic_load(&p->acquired);
    out->leases_taken_over = atomic_load(&p->taken_over);
    out->leases_lost = atomic_load(&p->lost);
    out->fence_refusals = atomic_load(&p->fence_refusals);
}

typedef struct lost_list {
    lease_ent *head;
} lost_list;

/* Under lmu: unlinks every entry for which drop(e) says so onto out. */
static void unlink_if(store_pg *p, lost_list *out, int (*drop)(const lease_ent *, void *),
                      void *arg)
{
    for (unsigned b = 0; b < LBUCKETS; b++) {
        lease_ent **e = &p->lb[b];
        while (*e) {
            if (drop(*e, arg)) {
                lease_ent *x = *e;
                *e = x->next;
                x->next = out->head;
                out->head = x;
                p->nleases--;
            } else {
                e = &(*e)->next;
            }
        }
    }
}

typedef struct sweep_arg {
    uint64_t now, idle_ms;
    int idle; /* 0: expired locally; 1: unused too long */
} sweep_arg;

static int expired_or_idle(const lease_ent *e, void *a)
{
    const sweep_arg *x = a;
    return x->idle ? e->last_used + x->idle_ms <= x->now : e->deadline <= x->now;
}

/* The renewal's answer: sorted wallet||epoch records. */
typedef struct renew_set {
    uint8_t *rows; /* n * 40 bytes */
    int n;
    uint64_t t0;
} renew_set;

static int row_cmp(const void *a, const void *b)
{
    return memcmp(a, b, RT_KEY_LEN);
}

static int not_renewed(const lease_ent *e, void *a)
{
    const renew_set *rs = a;
    if (e->acq_at > rs->t0) return 0; /* taken after the renewal looked: not its to judge */
    const uint8_t *hit = bsearch(e->key.b, rs->rows, (size_t)rs->n, 40, row_cmp);
    return !hit || store_get_u64(hit + 32) != e->epoch;
}

static void tell_lost(store_pg *p, lost_list *l, int release, PGconn *c)
{
    for (lease_ent *e = l->head, *nx; e; e = nx) {
        nx = e->next;
        if (!release) atomic_fetch_add(&p->lost, 1); /* an idle lease given back is not lost */
        if (p->lost_cb) p->lost_cb(p->lost_ud, &e->key);
        if (release && c) release_row(p, c, &e->key, e->epoch);
        free(e);
    }
    l->head = NULL;
}

static void renew(store *s)
{
    store_pg *p = s->pg;
    uint64_t now = mono_ms();
    lost_list gone = {NULL}, idle = {NULL};
    sweep_arg ex = {now, p->idle_ms, 0}, id = {now, p->idle_ms, 1};
    pthread_mutex_lock(&p->lmu);
    unlink_if(p, &gone, expired_or_idle, &ex);
    unlink_if(p, &idle, expired_or_idle, &id);
    pthread_mutex_unlock(&p->lmu);
    tell_lost(p, &gone, 0, NULL);
    PGconn *c = usable(p, &p->lease);
    /* Idle leases: the activation ends first (the callback), then the row
     * is given back, so no other node can activate while this one is. */
    tell_lost(p, &idle, 1, c);
    if (!c) return;

    renew_set rs = {NULL, 0, mono_ms()};
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu64, p->ttl);
    const char *v[2] = {p->node, ttl};
    PGresult *r = run(c,
                      "UPDATE cg_lease SET expires = now() + $2::bigint * interval '1 millisecond' "
                      "WHERE owner = $1 AND expires > now() RETURNING wallet, epoch",
                      2, v, NULL, NULL);
    if (!ok(r)) {
        PQclear(r);
        atomic_store(&p->reachable, 0);
        return; /* the local deadlines run out; the next pass reports them */
    }
    atomic_store(&p->reachable, 1);
    rs.n = PQntuples(r);
    rs.rows = malloc((size_t)(rs.n ? rs.n : 1) * 40);
    if (!rs.rows) {
        PQclear(r);
        return;
    }
    int m = 0;
    for (int i = 0; i < rs.n; i++) {
        if (PQgetlength(r, i, 0) != RT_KEY_LEN || PQgetlength(r, i, 1) != 8) continue;
        memcpy(rs.rows + 40 * m, PQgetvalue(r, i, 0), RT_KEY_LEN);
        store_put_u64(rs.rows + 40 * m + 32, be64(PQgetvalue(r, i, 1)));
        m++;
    }
    rs.n = m;
    PQclear(r);
    qsort(rs.rows, (size_t)rs.n, 40, row_cmp);
    pthread_mutex_lock(&p->lmu);
    unlink_if(p, &gone, not_renewed, &rs);
    for (unsigned b = 0; b < LBUCKETS; b++)
        for (lease_ent *e = p->lb[b]; e; e = e->next)
            if (e->acq_at <= rs.t0) e->deadline = rs.t0 + p->ttl - p->margin;
    pthread_mutex_unlock(&p->lmu);
    free(rs.rows);
    tell_lost(p, &gone, 0, NULL);
}

static void *lease_main(void *arg)
{
    store *s = arg;
    store_pg *p = s->pg;
    uint64_t period = p->ttl / 3 ? p->ttl / 3 : 1;
    for (;;) {
        pthread_mutex_lock(&p->tmu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + period * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (!p->quit && pthread_cond_timedwait(&p->tcv, &p->tmu, &ts) != ETIMEDOUT) {
        }
        int quit = p->quit;
        pthread_mutex_unlock(&p->tmu);
        if (quit) break;
        if (!atomic_load(&p->paused)) renew(s);
    }
    return NULL;
}
