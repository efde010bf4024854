/*
 * store_test_util.h — shared helpers of the store tests: scratch directories,
 * deterministic record contents, and raw LMDB access that plays the attacker
 * (edits the file behind the store's back).
 */
#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H

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

/* Raw access to one named database of the store's LMDB file (store closed). */
typedef struct raw_env {
    MDB_env *env;
} raw_env;

static inline int raw_get(const char *dir, const char *db, const void *key, size_t klen,
                          uint8_t *out, size_t *len)
{
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
