/*
 * fuzz_store.c — the store's record decoding (store.h) against a hostile
 * disk: a pristine store holding one wallet record (two versions) and one
 * meta record is copied to a scratch directory, ONE LMDB value of it is
 * replaced by the fuzzed bytes with liblmdb directly (bypassing sealing, as
 * an attacker or a bad disk would), and the store is then opened and read
 * through its public API only.
 *
 * Oracle beyond memory safety: the sealed record only ever opens as the
 * exact plaintext that was stored (a forged or replayed value must read as
 * DATA_LOSS, never as different bytes), and an unindexed record never reads.
 *
 *   byte 0: which value (target below), byte 1: key length for T_VER_KEY,
 *   rest: the value written.
 */
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cx.h"
#include "fuzz.h"
#include "store.h"

enum { T_REC, T_VER, T_ROOT, T_KEYCHECK, T_META, T_REC_UNINDEXED, T_VER_KEY, T_COUNT_ };

#define MAP_SIZE (1u << 20)
static const char PT[] = "wallet record version 2: share, params, sessions";

static struct {
    int ready;
    char dir[256];
    uint8_t *mdb, *key;
    size_t mdb_len, key_len;
    rt_key a, b;
    uint8_t meta_key[32];
    uint8_t sealed_rec[4096];
    size_t sealed_rec_len;
} S;

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *name, const uint8_t *b, size_t len)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", S.dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, b, len) == (ssize_t)len);
    close(fd);
}

static void rm(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", S.dir, name);
    unlink(p);
}

static void cleanup(void)
{
    rm("data.mdb");
    rm("lock.mdb");
    rm("master.key");
    rmdir(S.dir);
}

static void setup(void)
{
    if (S.ready) return;
    FUZZ_CHECK(cx_init());
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ?: "/tmp");
    snprintf(S.dir, sizeof S.dir, "%s/fuzz_store.%d", base, (int)getpid());
    mkdir(S.dir, 0700);
    atexit(cleanup);
    memset(S.a.b, 0xa1, 32);
    memset(S.b.b, 0xb2, 32);
    memset(S.meta_key, 0xc3, 32);
    store_options o = {.map_size = MAP_SIZE};
    store *st = NULL;
    char err[256];
    FUZZ_CHECK(store_open(S.dir, &o, &st, err, sizeof err) == RT_OK);
    FUZZ_CHECK(store_put_sync(st, &S.a, (const uint8_t *)"old", 3, 1) == RT_OK);
    FUZZ_CHECK(store_put_sync(st, &S.a, (const uint8_t *)PT, sizeof PT, 2) == RT_OK);
    FUZZ_CHECK(store_put_meta(st, S.meta_key, (const uint8_t *)"\x02params", 7) == RT_OK);
    store_close(st);
    char p[512];
    snprintf(p, sizeof p, "%s/data.mdb", S.dir);
    S.mdb = slurp(p, &S.mdb_len);
    snprintf(p, sizeof p, "%s/master.key", S.dir);
    S.key = slurp(p, &S.key_len);
    FUZZ_CHECK(S.mdb && S.key);
    /* The sealed record as stored, for seeds. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    FUZZ_CHECK(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_mapsize(env, MAP_SIZE);
    FUZZ_CHECK(mdb_env_open(env, S.dir, MDB_NOTLS | MDB_RDONLY, 0600) == 0);
    FUZZ_CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    FUZZ_CHECK(mdb_dbi_open(txn, "rec", 0, &dbi) == 0);
    MDB_val k = {32, S.a.b}, v;
    FUZZ_CHECK(mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size <= sizeof S.sealed_rec);
    memcpy(S.sealed_rec, v.mv_data, v.mv_size);
    S.sealed_rec_len = v.mv_size;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    S.ready = 1;
}

/* Puts one raw value into the pristine copy. Returns 0 when LMDB refuses
 * the key or value (e.g. an empty key): nothing to test then. */
static int raw_put(const char *db, const void *key, size_t klen, const uint8_t *val, size_t vlen)
{
    spit("data.mdb", S.mdb, S.mdb_len);
    spit("master.key", S.key, S.key_len);
    rm("lock.mdb");
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int ok = 0;
    FUZZ_CHECK(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_mapsize(env, MAP_SIZE);
    FUZZ_CHECK(mdb_env_open(env, S.dir, MDB_NOTLS | MDB_NOSYNC, 0600) == 0);
    FUZZ_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    FUZZ_CHECK(mdb_dbi_open(txn, db, 0, &dbi) == 0);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    if (mdb_put(txn, dbi, &k, &v, 0) == 0 && mdb_txn_commit(txn) == 0)
        ok = 1;
    else if (!ok)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return ok;
}

static int iter_cb(void *arg, const rt_key *key, uint64_t version)
{
    store *st = arg;
    uint8_t *rec = NULL;
    size_t len;
    uint64_t ver;
    if (store_get(st, key, &rec, &len, &ver) == RT_OK) {
        /* Anything that opens is one of the records really written. */
        FUZZ_CHECK(!memcmp(key->b, S.a.b, 32) && ver == version && ver == 2 && len == sizeof PT &&
                   !memcmp(rec, PT, len));
        free(rec);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2) return 0;
    unsigned t = data[0] % T_COUNT_;
    const uint8_t *val = data + 2;
    size_t vlen = size - 2;
    if (vlen > 65536) return 0;
    uint8_t kbuf[64];
    memset(kbuf, 0xa1, sizeof kbuf);
    int ok = 0;
    switch (t) {
    case T_REC:
        ok = raw_put("rec", S.a.b, 32, val, vlen);
        break;
    case T_VER:
        ok = raw_put("ver", S.a.b, 32, val, vlen);
        break;
    case T_ROOT:
        ok = raw_put("sys", "root", 4, val, vlen);
        break;
    case T_KEYCHECK:
        ok = raw_put("sys", "keycheck", 8, val, vlen);
        break;
    case T_META:
        ok = raw_put("meta", S.meta_key, 32, val, vlen);
        break;
    case T_REC_UNINDEXED:
        ok = raw_put("rec", S.b.b, 32, val, vlen);
        break;
    case T_VER_KEY:
        ok = raw_put("ver", kbuf, 1 + data[1] % 63, val, vlen);
        break;
    }
    if (!ok) return 0;
    store_options o = {.map_size = MAP_SIZE};
    store *st = NULL;
    char err[256];
    if (store_open(S.dir, &o, &st, err, sizeof err) != RT_OK) return 0;
    uint8_t *rec = NULL;
    size_t len;
    uint64_t ver;
    rt_status r = store_get(st, &S.a, &rec, &len, &ver);
    if (r == RT_OK) {
        FUZZ_CHECK(ver == 2 && len == sizeof PT && !memcmp(rec, PT, len));
        free(rec);
    }
    rec = NULL;
    if (store_get(st, &S.b, &rec, &len, &ver) == RT_OK) FUZZ_CHECK(!"an unindexed record opened");
    uint8_t *m = NULL;
    if (store_get_meta(st, S.meta_key, &m, &len) == RT_OK) {
        FUZZ_CHECK(len <= STORE_MAX_META || t == T_META);
        free(m);
    }
    (void)store_iterate(st, iter_cb, st);
    /* A write after the damage must not corrupt what is read back. */
    if (r == RT_OK && store_put_sync(st, &S.a, (const uint8_t *)PT, sizeof PT, 3) == RT_OK) {
        rec = NULL;
        FUZZ_CHECK(store_get(st, &S.a, &rec, &len, &ver) == RT_OK && ver == 3);
        free(rec);
    }
    store_close(st);
    return 0;
}

static int seed(const char *dir, const char *name, unsigned t, unsigned k, const uint8_t *v,
                size_t vl)
{
    uint8_t b[4096 + 2];
    if (vl > 4096) return 0;
    b[0] = (uint8_t)t;
    b[1] = (uint8_t)k;
    memcpy(b + 2, v, vl);
    return fuzz_seed(dir, name, b, vl + 2);
}

int fuzz_write_seeds(const char *dir)
{
    setup();
    int n = 0;
    uint8_t ver2[8] = {2}, ver1[8] = {1}, root[64] = {0}, kc[24 + 29 + 16] = {0};
    n += seed(dir, "rec_same", T_REC, 0, S.sealed_rec, S.sealed_rec_len);
    uint8_t flip[sizeof S.sealed_rec];
    size_t fl = S.sealed_rec_len;
    if (fl > 0 && fl <= sizeof flip) { /* setup() checked it; say so to the optimizer too */
        memcpy(flip, S.sealed_rec, fl);
        flip[fl - 1] ^= 1;
        n += seed(dir, "rec_tag_flip", T_REC, 0, flip, fl);
    }
    n += seed(dir, "rec_header_only", T_REC, 0, S.sealed_rec, 36);
    n += seed(dir, "ver_same", T_VER, 0, ver2, 8);
    n += seed(dir, "ver_rollback", T_VER, 0, ver1, 8);
    n += seed(dir, "ver_short", T_VER, 0, ver2, 7);
    n += seed(dir, "root_zero", T_ROOT, 0, root, sizeof root);
    n += seed(dir, "keycheck_zero", T_KEYCHECK, 0, kc, sizeof kc);
    n += seed(dir, "meta", T_META, 0, (const uint8_t *)"\x01\x02", 2);
    n += seed(dir, "rec_unindexed", T_REC_UNINDEXED, 0, S.sealed_rec, S.sealed_rec_len);
    n += seed(dir, "ver_key_31", T_VER_KEY, 30, ver2, 8);
    return n;
}
