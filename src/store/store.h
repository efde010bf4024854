/*
 * store.h — durable, encrypted per-wallet records: the only door into src/store.
 *
 * Owns: the two backends (LMDB under the data directory, the embedded
 * default; PostgreSQL for a cluster of nodes), the master key file, sealing
 * of records (XChaCha20-Poly1305, associated data = wallet id + record
 * version), the authenticated version index that detects rollback, the
 * group committer (many writers, one write transaction, one fsync), the
 * public per-wallet metadata records, the per-wallet leases that give a
 * cluster one activation per wallet (with fencing of every commit), and the
 * storage fault-injection hooks.
 *
 * Knows nothing about protocols or actors: a record is an opaque byte string
 * keyed by a 32-byte wallet id. store_persist() adapts it to the runtime's
 * rt_persist vtable.
 *
 * Durability contract (write-before-ack): a put's done callback reports RT_OK
 * only after the LMDB transaction holding it has been committed with its
 * default sync (fsync/fdatasync), so a process killed at any later moment
 * restarts with the record intact.
 *
 * Status codes: RT_NOT_FOUND (no record), RT_DATA_LOSS (record or index fails
 * authentication or parsing: that wallet only), RT_FAILED_PRECONDITION (stale
 * version), RT_UNAVAILABLE (I/O error, ENOSPC, map full, store closing),
 * RT_INVALID_ARGUMENT (bad sizes), RT_ABORTED (PostgreSQL: a put refused
 * because this node does not hold the wallet's lease at the epoch it was
 * made under — fencing; nothing of it was written).
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rt.h"

#define STORE_KEY_LEN 32 /* wallet ids and meta keys: same as RT_KEY_LEN */
#define STORE_MASTER_KEY_LEN 32
#define STORE_MAX_RECORD (16u << 20) /* bounded: a record larger than this is refused */
#define STORE_MAX_META (64u << 10)

typedef struct store store;

enum store_backend {
    STORE_LMDB = 0,     /* one node, files under the data directory */
    STORE_POSTGRES = 1, /* a cluster: every node opens the same database */
};

/* Called when this node lost a lease it held (renewal failed past its
 * expiry, or another node took it over): the daemon ends the wallet's
 * activation at once. On the lease thread; must not block or call the store. */
typedef void (*store_lease_lost_cb)(void *ud, const rt_key *wallet);

typedef struct store_options {
    int backend; /* enum store_backend */
    /* Master key file. NULL = "<dir>/master.key", created (0600) on first
     * start. A configured path must exist. Either way, an existing store
     * whose key is missing or different is a startup error, never a new key. */
    const char *key_path;
    size_t map_size;      /* LMDB map size; 0 = 1 GiB */
    unsigned max_readers; /* concurrent read transactions; 0 = 512 */
    int no_group_commit;  /* 1 = one write transaction + fsync per put (benchmarks) */
    unsigned max_batch;   /* puts per group commit; 0 = 1024 */
    /* PostgreSQL only. */
    const char *pg_dsn;     /* libpq connection string; required */
    const char *node_id;    /* this node's name in lease rows; unique per node; required */
    const char *node_url;   /* where other nodes forward to, e.g. "http://10.0.0.1:8080" */
    uint64_t lease_ttl_ms;  /* 0 = 5000 */
    unsigned pg_pool;       /* reader connections; 0 = 4 */
    uint64_t lease_idle_ms; /* a lease unused this long is given back; 0 = 10 min */
    store_lease_lost_cb on_lease_lost; /* may be NULL */
    void *lease_ud;
} store_options;

/*
 * Opens (creating on first start: dir 0700, files 0600) the store in dir.
 * Verifies the master key against the store and the version index against
 * its authenticated root. opt may be NULL (defaults). On failure err (if not
 * NULL) receives a NUL-terminated reason. Ownership: *out is the caller's,
 * released with store_close().
 */
rt_status store_open(const char *dir, const store_options *opt, store **out, char *err,
                     size_t err_len);

/* Drains queued puts (their callbacks fire), stops the committer, closes
 * LMDB and wipes keys. No call may be in flight or follow: stop the runtime
 * (rt_stop) before closing the store it persists to. One open store per
 * directory per process (LMDB's locks are per process). */
void store_close(store *s);

/*
 * Reads and authenticates key's record. Ownership: *rec is malloc'd and the
 * caller's (free it; it may hold secrets: wipe first). *version is the
 * record's version. NOT_FOUND when the key has none; DATA_LOSS when the
 * record was tampered with, moved from another wallet, rolled back to an
 * older version, or deleted behind the index's back.
 */
rt_status store_get(store *s, const rt_key *key, uint8_t **rec, size_t *len, uint64_t *version);

/* On PostgreSQL a put for a wallet whose lease this node does not hold
 * takes it first (as store_lease_acquire) and is refused with ABORTED when
 * another node holds it. */

/* Done callback of a put: exactly once, on the committer thread (or on the
 * caller's thread when the put is refused up front). Must not block long and
 * must not wait for the store (store_put_sync, store_delete): the committer
 * would wait on itself. store_put from it is fine. */
typedef void (*store_done_cb)(void *arg, rt_status st);

/*
 * Seals rec (on the calling thread, so sealing scales with writers) and
 * queues it as version `version`, which must be the current version + 1
 * (1 for a new key), else FAILED_PRECONDITION. done fires after the group
 * commit holding it is durable (RT_OK) or failed (UNAVAILABLE: nothing of it
 * was written). Borrowed: rec is copied before return.
 */
void store_put(store *s, const rt_key *key, const uint8_t *rec, size_t len, uint64_t version,
               store_done_cb done, void *arg);

/* Blocking form of store_put. */
rt_status store_put_sync(store *s, const rt_key *key, const uint8_t *rec, size_t len,
                         uint64_t version);

/* Durably removes key's record and version (NOT_FOUND if none). Deleting
 * forgets the version, so a later re-creation starts again at 1. */
rt_status store_delete(store *s, const rt_key *key);

/*
 * As store_delete, but first overwrites the record's bytes where they lie in
 * the data file, so the sealed share is gone from the disk and not merely
 * unlinked. Why: LMDB's delete moves the page holding a value to its free
 * list, bytes intact, until some later write happens to reuse it; a retired
 * wallet's share must not outlive its grace period in a backup of the file.
 *
 * LMDB, on the committer thread: first a write transaction of its own, in
 * which the value (inside the read-only map, as it is first touched in that
 * transaction) is overwritten with zeros through the data file's
 * descriptor, fdatasync'd, then deleted with its version entry (index root
 * updated) and committed. Then the copies: every commit copies the pages it
 * changes, so older copies of the record (the leaf it shared with other
 * records, copied whenever one of them changed; earlier versions) wait on
 * LMDB's free list; every free page no snapshot can read any more is zeroed
 * too (LMDB's own rule for reusing a page), after one dummy commit that
 * makes the wipe's own freed pages old enough. A page a long-running reader
 * still holds is left for the next wipe. A crash in between leaves a zeroed
 * record still indexed: it reads DATA_LOSS, the store opens, and the next
 * store_wipe finishes the job. Concurrent readers of this wallet may read
 * the zeros (DATA_LOSS): wipe only a wallet nothing serves any more.
 * PostgreSQL: the row is deleted; its old tuple versions stay in the table
 * file until VACUUM reclaims them (run VACUUM on the records table; a plain
 * VACUUM marks the space reusable, VACUUM FULL rewrites the file).
 * NOT_FOUND if key has no record; UNAVAILABLE on an I/O error (also when
 * the record is deleted but the scrub of the free pages failed: a retry
 * then says NOT_FOUND, and the next wipe scrubs them).
 */
rt_status store_wipe(store *s, const rt_key *key);

/* Calls cb for every key with a record, in key order, with its indexed
 * version; a non-zero return from cb stops the walk. cb may call store_get
 * but not write. Returns UNAVAILABLE on I/O error. */
typedef int (*store_iter_cb)(void *arg, const rt_key *key, uint64_t version);
rt_status store_iterate(store *s, store_iter_cb cb, void *arg);
/* Same, starting after key `after` (NULL: from the first), for paging: a
 * listing resumes where the last page ended without walking it again. */
rt_status store_iterate_from(store *s, const rt_key *after, store_iter_cb cb, void *arg);

/*
 * Public metadata (e.g. a wallet's participant host public keys), in its own
 * database, not encrypted: whoever reads it must check its integrity against
 * something it trusts (the wallet id commits to it). Synchronous and durable.
 * store_get_meta: Ownership: *out is malloc'd and the caller's.
 */
rt_status store_put_meta(store *s, const uint8_t key[STORE_KEY_LEN], const uint8_t *val,
                         size_t len);
rt_status store_get_meta(store *s, const uint8_t key[STORE_KEY_LEN], uint8_t **out, size_t *len);
rt_status store_delete_meta(store *s, const uint8_t key[STORE_KEY_LEN]);
/*
 * Compare-and-swap of a metadata record, atomic against every other writer
 * of the store (all nodes of a cluster): writes val only if the record is
 * still exactly expect[expect_len], or absent when expect is NULL. RT_OK when
 * written (durable), RT_ABORTED when the record was something else (nothing
 * written: re-read and decide again). One-time tokens and counters rely on
 * it: two nodes can never both consume the same token.
 */
rt_status store_cas_meta(store *s, const uint8_t key[STORE_KEY_LEN], const uint8_t *expect,
                         size_t expect_len, const uint8_t *val, size_t len);

/* The runtime's view: load = store_get, save = store_put. Borrowed: the
 * vtable lives inside s and is valid until store_close(). */
const rt_persist *store_persist(store *s);

typedef struct store_stats {
    uint64_t commits; /* write transactions committed */
    uint64_t puts;    /* puts made durable */
    uint64_t commit_failures;
    uint64_t max_batch_seen; /* largest group commit so far */
    /* leases (PostgreSQL; all 0 on LMDB) */
    uint64_t leases_held;       /* now */
    uint64_t leases_acquired;   /* free rows taken, or ours again after a restart */
    uint64_t leases_taken_over; /* expired rows of another node taken */
    uint64_t leases_lost; /* taken over by another node or expired unrenewed (idle ones given back
                             are not counted) */
    uint64_t fence_refusals; /* puts refused because the lease epoch was stale */
} store_stats;
void store_get_stats(store *s, store_stats *out);

/*
 * Returns the store's file pages to the kernel: drops this process's
 * mappings of the LMDB map (they stay in the page cache, so the next read is
 * a minor fault, not I/O). Every wallet ever read or written otherwise stays
 * in the daemon's resident set, so after evicting idle wallets the daemon
 * calls this to make them cost nothing resident. Safe at any time, from any
 * thread, concurrently with reads and commits. RT_UNIMPLEMENTED when the
 * map could not be located at open (then nothing is dropped).
 */
rt_status store_trim(store *s);

/* ------------------------------------------------------------- leases -- */
/*
 * A cluster activates a wallet on one node at a time: the node holding the
 * wallet's lease row (owner node id, owner URL, epoch, expiry in database
 * time). Every put of a wallet commits only if, inside the same
 * transaction, the row still names this node with the epoch it was taken
 * at and has not expired (fencing): a node that was paused or cut off past
 * its expiry can never commit after another node took over. Renewal is one
 * statement for all of a node's leases, every ttl/3.
 *
 * On LMDB every lease is this node's: acquire says held, valid is 1.
 */
typedef struct store_lease {
    int held;            /* 1: this node holds it; 0: another node does */
    uint64_t epoch;      /* the epoch this node or the owner holds it at */
    char owner_url[256]; /* held == 0: where to forward (NUL-terminated) */
} store_lease;

/*
 * Makes sure this node holds key's lease: a local check when it does (no
 * database round trip), else takes the row when it is free, expired or
 * names this node (a restart), bumping the epoch. RT_OK fills *out (held or
 * not); RT_UNAVAILABLE when the database cannot be reached.
 */
rt_status store_lease_acquire(store *s, const rt_key *key, store_lease *out);

/* Local, no round trip: 1 while this node holds key's lease with its local
 * deadline (started before the renewal that set it, minus a margin) not yet
 * passed. Gate for releasing a reply that no commit guards. */
int store_lease_valid(store *s, const rt_key *key);

/* Gives key's lease back (its epoch stays, the next owner bumps it). The
 * caller has ended the wallet's activation first. */
rt_status store_lease_release(store *s, const rt_key *key);

/* Gives back every lease this node holds (graceful shutdown), so other
 * nodes take them over at once instead of after the ttl. */
rt_status store_lease_release_all(store *s);

/* 1 when the backend answered within its timeout (LMDB: always), for
 * /readyz. */
int store_reachable(store *s);

/* The backend's name: "lmdb" or "postgres". */
const char *store_backend_name(const store *s);

/* Fault injection (builds with CG_FAULT_INJECTION): the next n commits fail
 * as if the disk reported err (EIO or ENOSPC): their transaction is aborted,
 * so nothing of them is written, and their puts report UNAVAILABLE.
 * Returns UNIMPLEMENTED in builds without fault injection. */
rt_status store_inject_commit_failures(store *s, unsigned n, int err);

/* Fault injection (PostgreSQL, builds with CG_FAULT_INJECTION): while on,
 * the lease thread does nothing at all, as in a process that is paused
 * (SIGSTOP) or cut off: no renewal, no local expiry. UNIMPLEMENTED
 * otherwise. */
rt_status store_inject_lease_pause(store *s, int on);

#endif
