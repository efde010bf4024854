/*
 * store_test_util.h — shared helpers of the store tests: scratch directories,
 * deterministic record contents, the backend under test, and raw access that
 * plays the attacker (edits the LMDB file or the database tables behind the
 * store's back).
 *
 * The same tests run against both backends: LMDB by default, PostgreSQL when
 * CG_TEST_PG_DSN names a server (tests/store/with_pg.sh starts one). On
 * PostgreSQL every scratch directory gets its own database, so tests stay
 * as independent as their directories.
 */
#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H

#include <libpq-fe.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static inline char *tmp_store_dir(void)
{
    char *d = strdup("/tmp/cgstore-test-XXXXXX");
    if (!d || !mkdtemp(d)) abort();
    return d;
}

static inline void rm_rf(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    free(dir);
}

static inline rt_key wallet_key(unsigned i)
{
    rt_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, "wallet--", 8);
    for (int b = 0; b < 4; b++)
        k.b[8 + b] = (uint8_t)(i >> (8 * b));
    k.b[31] = (uint8_t)(i * 7);
    return k;
}

/* Content of wallet i at version v: its length and bytes both depend on (i, v),
 * so a record from another wallet or version never matches. */
static inline size_t expected_rec(unsigned i, uint64_t v, uint8_t *out /* >= 300 bytes */)
{
    size_t len = 12 + (size_t)((i * 31u + v * 7u) % 250u);
    memcpy(out, &i, 4);
    memcpy(out + 4, &v, 8);
    for (size_t j = 12; j < len; j++)
        out[j] = (uint8_t)(i * 131u + v * 17u + j * 7u);
    return len;
}

/* ---- the backend under test ------------------------------------------- */

static inline const char *test_pg_dsn(void)
{
    const char *d = getenv("CG_TEST_PG_DSN");
    return d && *d ? d : NULL;
}

static inline int test_on_pg(void)
{
    return test_pg_dsn() != NULL;
}

/* The DSN of dir's own database, created on first use. */
static inline const char *test_pg_db(const char *dir)
{
    static _Thread_local char dsn[1024];
    char name[64];
    size_t n = 0;
    for (const char *p = dir; *p && n + 1 < sizeof name; p++)
        name[n++] = (*p == '/' || *p == '.') ? '_' : *p;
    name[n] = 0;
    PGconn *c = PQconnectdb(test_pg_dsn());
    if (PQstatus(c) == CONNECTION_OK) {
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
        PQclear(PQexec(c, sql)); /* "already exists" on a re-open is fine */
    }
    PQfinish(c);
    snprintf(dsn, sizeof dsn, "%s dbname='%s'", test_pg_dsn(), name);
    return dsn;
}

/* The options to open dir with on the backend under test (in may be NULL). */
static inline const store_options *test_opts(const char *dir, const store_options *in,
                                             store_options *buf)
{
    if (!test_on_pg()) return in;
    *buf = in ? *in : (store_options){0};
    buf->backend = STORE_POSTGRES;
    buf->pg_dsn = test_pg_db(dir);
    if (!buf->node_id) buf->node_id = "store-test";
    if (!buf->node_url) buf->node_url = "http://127.0.0.1:1";
    return buf;
}

/* Raw access to one table of the database (store closed or not): "rec" is
 * the sealed bytes, "ver" the version as 8 little-endian bytes, like the
 * LMDB databases of the same names. */
static inline int raw_pg(const char *dir, const char *db, const void *key, size_t klen,
                         uint8_t *out, size_t *len, const uint8_t *val, size_t vlen)
{
    PGconn *c = PQconnectdb(test_pg_db(dir));
    int rc = PQstatus(c) == CONNECTION_OK ? 0 : -1;
    int ver = !strcmp(db, "ver");
    char vs[24];
    if (val && ver) {
        uint64_t v = 0;
        for (size_t i = 0; i < 8 && i < vlen; i++)
            v |= (uint64_t)val[i] << (8 * i);
        snprintf(vs, sizeof vs, "%llu", (unsigned long long)v);
    }
    const char *pv[2] = {key, val && ver ? vs : (const char *)val};
    int pl[2] = {(int)klen, (int)vlen}, pf[2] = {1, ver ? 0 : 1};
    PGresult *r = NULL;
    if (!rc && !val)
        r = PQexecParams(c,
                         ver ? "SELECT version FROM cg_ver WHERE wallet = $1"
                             : "SELECT sealed FROM cg_rec WHERE wallet = $1",
                         1, NULL, pv, pl, pf, 1);
    else if (!rc)
        r = PQexecParams(c,
                         ver ? "INSERT INTO cg_ver VALUES ($1, $2::bigint) ON CONFLICT (wallet) "
                               "DO UPDATE SET version = EXCLUDED.version"
                             : "INSERT INTO cg_rec VALUES ($1, $2) ON CONFLICT (wallet) "
                               "DO UPDATE SET sealed = EXCLUDED.sealed",
                         2, NULL, pv, pl, pf, 1);
    if (!rc) {
        ExecStatusType t = PQresultStatus(r);
        if (t != PGRES_TUPLES_OK && t != PGRES_COMMAND_OK)
            rc = -1;
        else if (!val && PQntuples(r) != 1)
            rc = MDB_NOTFOUND;
        else if (!val && ver) {
            const uint8_t *b = (const uint8_t *)PQgetvalue(r, 0, 0);
            for (int i = 0; i < 8; i++)
                out[i] = b[7 - i]; /* big-endian on the wire, little-endian here */
            *len = 8;
        } else if (!val) {
            *len = (size_t)PQgetlength(r, 0, 0);
            memcpy(out, PQgetvalue(r, 0, 0), *len);
        }
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* Raw access to one named database of the store's LMDB file (store closed). */
static inline int raw_get(const char *dir, const char *db, const void *key, size_t klen,
                          uint8_t *out, size_t *len)
{
    if (test_on_pg()) return raw_pg(dir, db, key, klen, out, len, NULL, 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 4);
    if (!rc) rc = mdb_env_open(env, dir, MDB_NOTLS, 0600);
    if (!rc) rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (!rc) {
        rc = mdb_dbi_open(txn, db, 0, &dbi);
        MDB_val k = {klen, (void *)key}, v;
        if (!rc) rc = mdb_get(txn, dbi, &k, &v);
        if (!rc) {
            memcpy(out, v.mv_data, v.mv_size);
            *len = v.mv_size;
        }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

static inline int raw_put(const char *dir, const char *db, const void *key, size_t klen,
                          const uint8_t *val, size_t len)
{
    if (test_on_pg()) return raw_pg(dir, db, key, klen, NULL, NULL, val, len);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 4);
    if (!rc) rc = mdb_env_open(env, dir, MDB_NOTLS, 0600);
    if (!rc) rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (!rc) {
        rc = mdb_dbi_open(txn, db, 0, &dbi);
        MDB_val k = {klen, (void *)key}, v = {len, (void *)val};
        if (!rc) rc = mdb_put(txn, dbi, &k, &v, 0);
        if (!rc)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

#endif
