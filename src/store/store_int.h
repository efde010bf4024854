/*
 * store_int.h — what the files of src/store share (not a public door):
 * the record and index formats, the store struct, and the PostgreSQL
 * backend's entry points that store.c dispatches to.
 *
 * Why one front and two backends: sealing, the associated data, the
 * index's set hash and the committer queue are the security and
 * durability argument of the store, and must be the same code whichever
 * engine keeps the bytes. A backend only stores sealed bytes, versions and
 * the index root, inside transactions the front asks for.
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>

#include "store.h"

#define REC_FORMAT 1
#define HDR_LEN 36 /* format u8, reserved u8[3], version u64 LE, nonce[24] */
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ACC_LEN 32
#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define DEFAULT_READERS 512
#define DEFAULT_BATCH 1024

extern const char store_keycheck_pt[29]; /* "cosignerd store key check v1" + NUL */
#define STORE_KEYCHECK_LEN (NONCE_LEN + 29 + TAG_LEN)

/* REQ_WIPE (LMDB only; PostgreSQL queues a REQ_DELETE) always commits in a
 * transaction of its own, as its first and only change: see wipe_value(). */
enum req_kind { REQ_PUT, REQ_DELETE, REQ_WIPE };

typedef struct req {
    struct req *next;
    int kind;
    rt_key key;
    uint64_t version;
    uint64_t epoch;  /* PostgreSQL: the lease epoch this put was made under (fencing) */
    int leased;      /* PostgreSQL: this node held the lease when the put was queued */
    uint8_t *sealed; /* HDR_LEN + ciphertext */
    size_t sealed_len;
    store_done_cb done;
    void *arg;
    rt_status st;
} req;

/* Secrets live in sodium_malloc'd memory (guard pages, locked, wiped on free). */
typedef struct keys {
    uint8_t rec[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    uint8_t idx[crypto_generichash_KEYBYTES];
    uint8_t root[crypto_generichash_KEYBYTES];
} keys;

typedef struct store_pg store_pg;

struct store {
    MDB_env *env; /* LMDB backend; NULL on PostgreSQL */
    MDB_dbi db_rec, db_ver, db_meta, db_sys;
    store_pg *pg; /* PostgreSQL backend; NULL on LMDB */
    keys *k;
    uint8_t acc[ACC_LEN]; /* LMDB: committer thread only (and open) */
    bool group_commit;
    unsigned max_batch;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    req *head, *tail; /* FIFO: one actor's saves commit in the order it made them */
    bool stopping;
    pthread_t committer;
    unsigned inject_fail;
    int inject_err;
    store_stats stats;
    void *map_base; /* LMDB's read-only map of data.mdb (for store_trim); NULL if unknown */
    size_t map_len;

    rt_persist persist;
};

/* ---- shared by both backends (store.c) ---- */
void store_put_u64(uint8_t *p, uint64_t v);
uint64_t store_get_u64(const uint8_t *p);
void store_idx_term(const store *s, const uint8_t *wallet, uint64_t version, uint8_t out[ACC_LEN]);
void store_acc_xor(uint8_t acc[ACC_LEN], const uint8_t t[ACC_LEN]);
void store_root_tag(const store *s, const uint8_t acc[ACC_LEN], uint8_t tag[32]);
void store_seterr(char *err, size_t n, const char *fmt, ...);
/* Checks a sealed record against the version the index holds and opens it.
 * Ownership: *rec is malloc'd and the caller's. DATA_LOSS on any mismatch. */
rt_status store_open_record(const store *s, const rt_key *key, uint64_t want, const uint8_t *p,
                            size_t n, uint8_t **rec, size_t *len);
/* The sealed constant that proves a master key belongs to a store. */
void store_keycheck_seal(const store *s, uint8_t out[STORE_KEYCHECK_LEN]);
int store_keycheck_ok(const store *s, const uint8_t *p, size_t n);
/* Fault injection: 1 when the commit in progress must fail (consumes one). */
int store_take_injected_failure(store *s, int *err);

/* ---- the PostgreSQL backend (store_pg.c) ---- */
/* 1: the database already holds a store (a key check), 0: it does not,
 * -1: unreachable. Asked before a missing master key is created. */
int store_pg_probe(const store_options *opt);
rt_status store_pg_open(store *s, const store_options *opt, char *err, size_t errn);
void store_pg_close(store *s);
rt_status store_pg_get(store *s, const rt_key *key, uint8_t **sealed, size_t *len,
                       uint64_t *version);
void store_pg_commit_batch(store *s, req *batch, unsigned n);
rt_status store_pg_iterate(store *s, const rt_key *after, store_iter_cb cb, void *arg);
rt_status store_pg_cas_meta(store *s, const uint8_t *key, const uint8_t *expect, size_t expect_len,
                            const uint8_t *val, size_t len);
rt_status store_pg_meta(store *s, int op, const uint8_t *key, const uint8_t *val, size_t len,
                        uint8_t **out, size_t *out_len);     /* op: 0 get, 1 put, 2 delete */
void store_pg_lease_of(store *s, const rt_key *key, req *r); /* fills r->epoch, r->leased */
rt_status store_pg_lease_acquire(store *s, const rt_key *key, store_lease *out);
int store_pg_lease_valid(store *s, const rt_key *key);
rt_status store_pg_lease_release(store *s, const rt_key *key);
rt_status store_pg_lease_release_all(store *s);
int store_pg_reachable(store *s);
void store_pg_stats(store *s, store_stats *out);
void store_pg_pause(store *s, int on);

#endif
