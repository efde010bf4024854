/*
 * store.c — LMDB-backed encrypted record store with group commit.
 *
 * Layout of the LMDB environment (one file, data.mdb, in the data dir):
 *   "rec"   wallet id -> sealed record (header || XChaCha20-Poly1305 ciphertext)
 *   "ver"   wallet id -> u64 LE version: the version index
 *   "meta"  32-byte key -> public bytes (not sealed)
 *   "sys"   "keycheck" -> sealed constant (proves the master key fits the store)
 *           "root"     -> acc[32] || tag[32] (authenticates the whole index)
 *
 * Why a separate, authenticated version index (rollback detection):
 * the AEAD binds a record to its wallet id and version, so a byte flip or a
 * record moved to another wallet fails to open. But an older record of the
 * SAME wallet is still a valid ciphertext: only knowing which version is
 * current detects the replay. The actor's in-memory version cannot be that
 * source, because activation after a restart or eviction is exactly when it
 * is gone. So the store keeps the current version of every wallet in "ver"
 * and refuses a record whose (authenticated) header version differs.
 * An attacker who can write the file could replay the old index entry along
 * with the old record; to catch that, the whole index is folded into a
 * set hash acc = XOR over wallets of BLAKE2b_k(wallet || version) with a
 * secret key (MSet-XOR-Hash), and acc is stored MAC'd under another key in
 * the same transaction as every index change. At open, acc is recomputed
 * from the index and checked against the MAC'd root: any mix of index entries
 * from different moments fails (the store refuses to open: which wallet was
 * rolled back cannot be known, and signing from a rolled-back share must not
 * happen). Replaying the ENTIRE file to an older state cannot be detected
 * without a monotonic counter outside the file; the multi-node backend's
 * quorum is where that belongs.
 */
#include "store.h"

#include "cg_config.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "store_int.h"

const char store_keycheck_pt[29] = "cosignerd store key check v1";
#define KEYCHECK_PT store_keycheck_pt

enum { KDF_REC = 1, KDF_IDX = 2, KDF_ROOT = 3 };
static const char KDF_CTX[crypto_kdf_CONTEXTBYTES] = {'c', 'g', 's', 't', 'o', 'r', 'e', '1'};

/* ------------------------------------------------------------ helpers -- */

void store_seterr(char *err, size_t n, const char *fmt, ...)
{
    if (!err || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

void store_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t store_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Index term of one wallet at one version: PRF under a key the file never holds. */
void store_idx_term(const store *s, const uint8_t *wallet, uint64_t version, uint8_t out[ACC_LEN])
{
    uint8_t msg[STORE_KEY_LEN + 8];
    memcpy(msg, wallet, STORE_KEY_LEN);
    store_put_u64(msg + STORE_KEY_LEN, version);
    crypto_generichash(out, ACC_LEN, msg, sizeof msg, s->k->idx, sizeof s->k->idx);
}

void store_acc_xor(uint8_t acc[ACC_LEN], const uint8_t t[ACC_LEN])
{
    for (int i = 0; i < ACC_LEN; i++)
        acc[i] ^= t[i];
}

void store_root_tag(const store *s, const uint8_t acc[ACC_LEN], uint8_t tag[32])
{
    uint8_t msg[4 + ACC_LEN];
    memcpy(msg, "root", 4);
    memcpy(msg + 4, acc, ACC_LEN);
    crypto_generichash(tag, 32, msg, sizeof msg, s->k->root, sizeof s->k->root);
}

static rt_status mdb_status(int rc)
{
    switch (rc) {
    case 0:
        return RT_OK;
    case MDB_NOTFOUND:
        return RT_NOT_FOUND;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return RT_DATA_LOSS;
    default:
        return RT_UNAVAILABLE; /* EIO, ENOSPC, MDB_MAP_FULL, readers full, ... */
    }
}

/* Record AD = format/reserved/version header bytes || wallet id. The nonce is
 * not in the AD (it is an AEAD input already). */
static void rec_ad(const uint8_t *hdr, const rt_key *key, uint8_t ad[12 + RT_KEY_LEN])
{
    memcpy(ad, hdr, 12);
    memcpy(ad + 12, key->b, RT_KEY_LEN);
}

/* ---------------------------------------------------------- key file -- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static rt_status read_key_file(const char *path, uint8_t *mk, char *err, size_t errn)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        store_seterr(err, errn, "cannot open master key %s: %s", path, strerror(errno));
        return errno == ENOENT ? RT_NOT_FOUND : RT_UNAVAILABLE;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        store_seterr(err, errn, "master key %s is not a regular file", path);
        return RT_FAILED_PRECONDITION;
    }
    if (st.st_mode & 077) {
        close(fd);
        store_seterr(err, errn,
                     "master key %s is accessible by group/others (mode %03o): chmod 600", path,
                     (unsigned)(st.st_mode & 0777));
        return RT_PERMISSION_DENIED;
    }
    if (st.st_size != STORE_MASTER_KEY_LEN) {
        close(fd);
        store_seterr(err, errn, "master key %s must be exactly %d bytes", path,
                     STORE_MASTER_KEY_LEN);
        return RT_FAILED_PRECONDITION;
    }
    size_t got = 0;
    while (got < STORE_MASTER_KEY_LEN) {
        ssize_t r = read(fd, mk + got, STORE_MASTER_KEY_LEN - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            store_seterr(err, errn, "cannot read master key %s", path);
            return RT_UNAVAILABLE;
        }
        got += (size_t)r;
    }
    close(fd);
    return RT_OK;
}

/* Creates the key atomically (tmp + fsync + rename + fsync dir): a crash
 * leaves either no key or a complete one, and it happens before the LMDB
 * file exists, so "store exists without its key" only means an operator
 * removed it. */
static rt_status create_key_file(const char *dir, const char *path, uint8_t *mk, char *err,
                                 size_t errn)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        store_seterr(err, errn, "key path too long");
        return RT_INVALID_ARGUMENT;
    }
    unlink(tmp); /* leftover of a crash during an earlier first start */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        store_seterr(err, errn, "cannot create %s: %s", tmp, strerror(errno));
        return RT_UNAVAILABLE;
    }
    randombytes_buf(mk, STORE_MASTER_KEY_LEN);
    size_t off = 0;
    while (off < STORE_MASTER_KEY_LEN) {
        ssize_t w = write(fd, mk + off, STORE_MASTER_KEY_LEN - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    if (off != STORE_MASTER_KEY_LEN || fsync(fd) != 0) {
        store_seterr(err, errn, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return RT_UNAVAILABLE;
    }
    close(fd);
    if (rename(tmp, path) != 0 || fsync_dir(dir) != 0) {
        store_seterr(err, errn, "cannot install %s: %s", path, strerror(errno));
        unlink(tmp);
        return RT_UNAVAILABLE;
    }
    return RT_OK;
}

/* ---------------------------------------------------------- committer -- */

/*
 * Overwrites a value in place in the data file with zeros and makes that
 * durable. v must come from mdb_get as the first access of a write
 * transaction (its page is not dirty yet), so it points into LMDB's
 * read-only, MAP_SHARED map of data.mdb: its file offset is its distance
 * from the map's base, and the zeros written through the file descriptor
 * are what the map (and any reader) sees from then on. Returns an errno
 * that aborts the transaction, or 0.
 */
static int wipe_value(store *s, const MDB_val *v)
{
    MDB_envinfo ei;
    uintptr_t base = 0, p = (uintptr_t)v->mv_data;
    size_t maplen = s->map_len;
    if (mdb_env_info(s->env, &ei) == 0 && ei.me_mapaddr) {
        base = (uintptr_t)ei.me_mapaddr; /* MDB_FIXEDMAP only; else located at open */
        maplen = ei.me_mapsize;
    } else if (s->map_base) {
        base = (uintptr_t)s->map_base;
    }
    if (!base || p < base || v->mv_size > maplen || p - base > maplen - v->mv_size)
        return ENOTSUP; /* not in the map: refuse rather than delete without wiping */
    int fd;
    if (mdb_env_get_fd(s->env, &fd)) return EIO;
    static const uint8_t zeros[4096];
    off_t off = (off_t)(p - base);
    size_t left = v->mv_size;
    while (left) {
        size_t n = left < sizeof zeros ? left : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        off += w;
        left -= (size_t)w;
    }
    return fdatasync(fd) == 0 ? 0 : errno;
}

static int write_root(store *s, MDB_txn *txn);

/* mdb_reader_list's lines: "%10d %zx %s" = pid, thread, txnid or "-". */
static int oldest_reader_line(const char *msg, void *ctx)
{
    size_t *oldest = ctx;
    int pid;
    size_t tid;
    unsigned long long txn;
    if (sscanf(msg, "%d %zx %llu", &pid, &tid, &txn) == 3 && txn < *oldest) *oldest = (size_t)txn;
    return 0;
}

/*
 * Zeroes every page on LMDB's free list that no snapshot can still read:
 * where the older copies of a wiped record lie. Every write copies the
 * pages it changes (copy on write), so the leaf that held a small record
 * was copied, bytes and all, each time any record beside it changed, and
 * those copies wait on the free list, intact, for LMDB to reuse them.
 *
 * Which pages are safe is LMDB's own rule for reusing them: those freed by
 * a transaction older than the oldest live reader and older than the
 * previous commit (whose tree the other meta page still names). A dummy
 * commit first (the index root rewritten as it is) makes the wipe's own
 * commit old enough, so the pages it freed are scrubbed too. All of it runs
 * inside one write transaction, which holds LMDB's writer lock: no other
 * writer (store_put_meta runs on its caller's thread) can take one of these
 * pages meanwhile. A page still held by a long reader is left for the next
 * scrub. Committer thread only.
 */
static int scrub_free_pages(store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return rc;
    if ((rc = write_root(s, txn))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn))) return rc; /* frees txn */
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) return rc;
    size_t oldest = mdb_txn_id(txn) - 1;
    mdb_reader_list(s->env, oldest_reader_line, &oldest);
    /* LMDB lets only a read-only transaction read the free list; this one
     * sees the last commit, which nobody can change while txn is open. */
    MDB_txn *rd = NULL;
    MDB_stat ms;
    int fd;
    MDB_cursor *c = NULL;
    if ((rc = mdb_env_stat(s->env, &ms)) || (rc = mdb_env_get_fd(s->env, &fd)) ||
        (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rd)) ||
        (rc = mdb_cursor_open(rd, 0 /* the free list */, &c))) {
        if (rd) mdb_txn_abort(rd);
        mdb_txn_abort(txn);
        return rc;
    }
    uint8_t *zeros = calloc(1, ms.ms_psize);
    if (!zeros) rc = ENOMEM;
    MDB_val k, v;
    while (!rc && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
        size_t freed_by;
        if (k.mv_size != sizeof freed_by || v.mv_size < sizeof(size_t)) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(&freed_by, k.mv_data, sizeof freed_by);
        if (freed_by >= oldest) break; /* keys ascend: the rest are newer */
        const size_t *idl = v.mv_data; /* count, then page numbers */
        size_t count = idl[0];
        if (count > v.mv_size / sizeof(size_t) - 1) {
            rc = MDB_CORRUPTED;
            break;
        }
        for (size_t i = 1; !rc && i <= count; i++) {
            off_t off = (off_t)idl[i] * (off_t)ms.ms_psize;
            ssize_t w;
            do
                w = pwrite(fd, zeros, ms.ms_psize, off);
            while (w < 0 && errno == EINTR);
            if (w != (ssize_t)ms.ms_psize) rc = w < 0 ? errno : EIO;
        }
    }
    if (rc == MDB_NOTFOUND) rc = 0;
    if (!rc && fdatasync(fd)) rc = errno;
    free(zeros);
    mdb_cursor_close(c);
    mdb_txn_abort(rd);
    mdb_txn_abort(txn); /* it changed nothing LMDB knows about */
    return rc;
}

/* Applies one request inside the batch's write transaction. Returns an LMDB
 * error that breaks the whole transaction (0 otherwise); the request's own
 * outcome goes to r->st. */
static int apply_req(store *s, MDB_txn *txn, req *r)
{
    MDB_val k = {RT_KEY_LEN, r->key.b}, v;
    uint64_t cur = 0;
    int rc = mdb_get(txn, s->db_ver, &k, &v);
    if (rc == 0) {
        if (v.mv_size != 8) {
            r->st = RT_DATA_LOSS;
            return 0;
        }
        cur = store_get_u64(v.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    uint8_t t[ACC_LEN];
    if (r->kind == REQ_WIPE) {
        MDB_val rv;
        int wrc = mdb_get(txn, s->db_rec, &k, &rv);
        if (wrc == 0) {
            if ((wrc = wipe_value(s, &rv)) != 0) return wrc;
        } else if (wrc != MDB_NOTFOUND) {
            return wrc;
        }
    }
    if (r->kind == REQ_DELETE || r->kind == REQ_WIPE) {
        if (rc == MDB_NOTFOUND) {
            r->st = RT_NOT_FOUND;
            return 0;
        }
        rc = mdb_del(txn, s->db_rec, &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND) return rc;
        if ((rc = mdb_del(txn, s->db_ver, &k, NULL)) != 0) return rc;
        store_idx_term(s, r->key.b, cur, t);
        store_acc_xor(s->acc, t);
        r->st = RT_OK;
        return 0;
    }
    if (r->version != cur + 1) {
        r->st = RT_FAILED_PRECONDITION;
        return 0;
    }
    uint8_t vb[8];
    store_put_u64(vb, r->version);
    MDB_val rv = {r->sealed_len, r->sealed}, vv = {8, vb};
    if ((rc = mdb_put(txn, s->db_rec, &k, &rv, 0)) != 0) return rc;
    if ((rc = mdb_put(txn, s->db_ver, &k, &vv, 0)) != 0) return rc;
    if (cur) {
        store_idx_term(s, r->key.b, cur, t);
        store_acc_xor(s->acc, t);
    }
    store_idx_term(s, r->key.b, r->version, t);
    store_acc_xor(s->acc, t);
    r->st = RT_OK;
    return 0;
}

static int write_root(store *s, MDB_txn *txn)
{
    uint8_t buf[ACC_LEN + 32];
    memcpy(buf, s->acc, ACC_LEN);
    store_root_tag(s, s->acc, buf + ACC_LEN);
    MDB_val k = {4, (void *)"root"}, v = {sizeof buf, buf};
    return mdb_put(txn, s->db_sys, &k, &v, 0);
}

/* One batch = one write transaction = one fsync'd commit. On any failure the
 * transaction is aborted (LMDB writes nothing of it) and the in-memory set
 * hash is restored, so the batch leaves no trace. */
static void commit_batch(store *s, req *batch, unsigned n)
{
    uint8_t acc_saved[ACC_LEN];
    memcpy(acc_saved, s->acc, ACC_LEN);
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    for (req *r = batch; rc == 0 && r; r = r->next)
        rc = apply_req(s, txn, r);
    if (rc == 0) rc = write_root(s, txn);
    int ierr;
    if (rc == 0 && store_take_injected_failure(s, &ierr)) rc = ierr;
    if (rc == 0) {
        rc = mdb_txn_commit(txn); /* frees txn even on failure */
    } else if (txn) {
        mdb_txn_abort(txn);
    }
    unsigned ok = 0;
    if (rc != 0) {
        memcpy(s->acc, acc_saved, ACC_LEN);
        /* Decisions made inside the aborted transaction (e.g. a stale version
         * judged against an earlier put of the same batch) are void too. */
        for (req *r = batch; r; r = r->next)
            r->st = RT_UNAVAILABLE;
    } else {
        for (req *r = batch; r; r = r->next)
            ok += r->st == RT_OK && r->kind == REQ_PUT;
    }
    pthread_mutex_lock(&s->mu);
    if (rc == 0) {
        s->stats.commits++;
        s->stats.puts += ok;
    } else {
        s->stats.commit_failures++;
    }
    if (n > s->stats.max_batch_seen) s->stats.max_batch_seen = n;
    pthread_mutex_unlock(&s->mu);
}

int store_take_injected_failure(store *s, int *err)
{
#if CG_FAULT_INJECTION
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    if (s->inject_fail) {
        s->inject_fail--;
        *err = s->inject_err ? s->inject_err : EIO;
        hit = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return hit;
#else
    (void)s;
    *err = 0;
    return 0;
#endif
}

static void req_free(req *r)
{
    if (r->sealed) free(r->sealed); /* ciphertext only: nothing to wipe */
    free(r);
}

static void *committer_main(void *arg)
{
    store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        unsigned limit = s->group_commit ? s->max_batch : 1, n = 0;
        req *batch = s->head, *last = NULL;
        /* A wipe commits alone: its value must be untouched by earlier
         * changes of the same transaction (see wipe_value). */
        if (batch->kind == REQ_WIPE) limit = 1;
        for (req *r = s->head; r && n < limit; r = r->next) {
            if (n && r->kind == REQ_WIPE) break;
            last = r;
            n++;
        }
        s->head = last->next;
        if (!s->head) s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->mu);

        if (s->pg) {
            store_pg_commit_batch(s, batch, n);
        } else {
            commit_batch(s, batch, n);
            /* The record is gone from the tree; now its older copies. A
             * failure is reported: the pages wait for the next wipe. */
            if (batch->kind == REQ_WIPE && batch->st == RT_OK && scrub_free_pages(s) != 0)
                batch->st = RT_UNAVAILABLE;
        }
        for (req *r = batch, *nx; r; r = nx) {
            nx = r->next;
            r->done(r->arg, r->st);
            req_free(r);
        }
    }
    return NULL;
}

static bool enqueue(store *s, req *r)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    r->next = NULL;
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

/* --------------------------------------------------------------- open -- */

void store_keycheck_seal(const store *s, uint8_t out[STORE_KEYCHECK_LEN])
{
    randombytes_buf(out, NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_LEN, NULL, (const uint8_t *)KEYCHECK_PT,
                                               sizeof KEYCHECK_PT, (const uint8_t *)"keycheck", 8,
                                               NULL, out, s->k->rec);
}

int store_keycheck_ok(const store *s, const uint8_t *p, size_t n)
{
    uint8_t pt[sizeof KEYCHECK_PT];
    return n == STORE_KEYCHECK_LEN && crypto_aead_xchacha20poly1305_ietf_decrypt(
                                          pt, NULL, NULL, p + NONCE_LEN, n - NONCE_LEN,
                                          (const uint8_t *)"keycheck", 8, p, s->k->rec) == 0;
}

static rt_status check_keys_and_index(store *s, char *err, size_t errn)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        store_seterr(err, errn, "lmdb: %s", mdb_strerror(rc));
        return mdb_status(rc);
    }
    rt_status st = RT_OK;
    if ((rc = mdb_dbi_open(txn, "rec", MDB_CREATE, &s->db_rec)) ||
        (rc = mdb_dbi_open(txn, "ver", MDB_CREATE, &s->db_ver)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->db_meta)) ||
        (rc = mdb_dbi_open(txn, "sys", MDB_CREATE, &s->db_sys))) {
        store_seterr(err, errn, "lmdb: %s", mdb_strerror(rc));
        mdb_txn_abort(txn);
        return mdb_status(rc);
    }
    MDB_val kk = {8, (void *)"keycheck"}, kv;
    MDB_val rk = {4, (void *)"root"}, rv;
    bool fresh = false;
    rc = mdb_get(txn, s->db_sys, &kk, &kv);
    if (rc == MDB_NOTFOUND) {
        MDB_stat ms;
        if (mdb_stat(txn, s->db_ver, &ms) == 0 && ms.ms_entries) {
            store_seterr(err, errn, "store has records but no key check: refusing to open");
            st = RT_DATA_LOSS;
            goto out;
        }
        /* First start: seal the check value under this key. */
        uint8_t buf[STORE_KEYCHECK_LEN];
        store_keycheck_seal(s, buf);
        kv.mv_size = sizeof buf;
        kv.mv_data = buf;
        memset(s->acc, 0, ACC_LEN);
        if ((rc = mdb_put(txn, s->db_sys, &kk, &kv, 0)) || (rc = write_root(s, txn))) {
            store_seterr(err, errn, "lmdb: %s", mdb_strerror(rc));
            st = mdb_status(rc);
            goto out;
        }
        fresh = true;
    } else if (rc) {
        store_seterr(err, errn, "lmdb: %s", mdb_strerror(rc));
        st = mdb_status(rc);
        goto out;
    } else {
        if (!store_keycheck_ok(s, kv.mv_data, kv.mv_size)) {
            store_seterr(err, errn, "master key does not belong to this store");
            st = RT_FAILED_PRECONDITION;
            goto out;
        }
        /* Recompute the set hash of the index and check it against the root. */
        rc = mdb_get(txn, s->db_sys, &rk, &rv);
        if (rc || rv.mv_size != ACC_LEN + 32) {
            store_seterr(err, errn, "version index root missing or malformed");
            st = rc && rc != MDB_NOTFOUND ? mdb_status(rc) : RT_DATA_LOSS;
            goto out;
        }
        uint8_t acc[ACC_LEN] = {0}, t[ACC_LEN], tag[32];
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(txn, s->db_ver, &c))) {
            st = mdb_status(rc);
            goto out;
        }
        MDB_val k, v;
        bool bad = false;
        while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
            if (k.mv_size != STORE_KEY_LEN || v.mv_size != 8) {
                bad = true;
                break;
            }
            store_idx_term(s, k.mv_data, store_get_u64(v.mv_data), t);
            store_acc_xor(acc, t);
        }
        mdb_cursor_close(c);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            st = mdb_status(rc);
            store_seterr(err, errn, "lmdb: %s", mdb_strerror(rc));
            goto out;
        }
        store_root_tag(s, acc, tag);
        if (bad || sodium_memcmp(acc, rv.mv_data, ACC_LEN) != 0 ||
            sodium_memcmp(tag, (const uint8_t *)rv.mv_data + ACC_LEN, 32) != 0) {
            store_seterr(err, errn,
                         "version index fails authentication: records were rolled back or the "
                         "index was tampered with; refusing to serve from it");
            st = RT_DATA_LOSS;
            goto out;
        }
        memcpy(s->acc, acc, ACC_LEN);
    }
out:
    if (st == RT_OK && fresh) {
        rc = mdb_txn_commit(txn);
        if (rc) {
            store_seterr(err, errn, "lmdb commit: %s", mdb_strerror(rc));
            st = mdb_status(rc);
        }
    } else if (st == RT_OK) {
        rc = mdb_txn_commit(txn); /* keeps the dbi handles; writes nothing */
        if (rc) st = mdb_status(rc);
    } else {
        mdb_txn_abort(txn);
    }
    return st;
}

static rt_status persist_load(void *ud, const rt_key *key, uint8_t **rec, size_t *len,
                              uint64_t *version)
{
    *version = 0;
    return store_get(ud, key, rec, len, version);
}

static void persist_save(void *ud, const rt_key *key, const uint8_t *rec, size_t len,
                         uint64_t version, void (*done)(void *arg, rt_status st), void *arg)
{
    store_put(ud, key, rec, len, version, done, arg);
}

/*
 * Where LMDB mapped data.mdb. mdb_env_info reports the address only for
 * MDB_FIXEDMAP environments, so look the file's mapping up by device and
 * inode in /proc/self/maps, once: the store never resizes its map. Without
 * it store_trim is a no-op; nothing else depends on it.
 */
static void find_map(store *s)
{
    int fd;
    struct stat st;
    if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &st)) return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[768];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off, ino;
        unsigned maj, mnr;
        char perm[5];
        if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &lo, &hi, perm, &off, &maj, &mnr, &ino) != 7)
            continue;
        if (ino == (unsigned long)st.st_ino && maj == major(st.st_dev) && mnr == minor(st.st_dev) &&
            off == 0 && perm[1] != 'w') {
            s->map_base = (void *)lo;
            s->map_len = hi - lo;
            break;
        }
    }
    fclose(f);
}

rt_status store_open(const char *dir, const store_options *opt, store **out, char *err, size_t errn)
{
    static const store_options defaults = {0};
    if (!opt) opt = &defaults;
    *out = NULL;
    if (opt->backend != STORE_LMDB && opt->backend != STORE_POSTGRES) {
        store_seterr(err, errn, "no such store backend");
        return RT_INVALID_ARGUMENT;
    }
    if (!dir || !*dir) {
        store_seterr(err, errn, "no data directory");
        return RT_INVALID_ARGUMENT;
    }
    if (sodium_init() < 0) {
        store_seterr(err, errn, "libsodium failed to initialise");
        return RT_INTERNAL;
    }
    char data_path[4096], key_path[4096];
    if (snprintf(data_path, sizeof data_path, "%s/data.mdb", dir) >= (int)sizeof data_path ||
        snprintf(key_path, sizeof key_path, "%s/master.key", dir) >= (int)sizeof key_path) {
        store_seterr(err, errn, "data directory path too long");
        return RT_INVALID_ARGUMENT;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        store_seterr(err, errn, "cannot create %s: %s", dir, strerror(errno));
        return RT_UNAVAILABLE;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        store_seterr(err, errn, "%s is not a directory", dir);
        return RT_FAILED_PRECONDITION;
    }
    /* On PostgreSQL the directory keeps only the key: whether the store
     * exists is the database's to say (its key check), asked below. */
    bool exists = opt->backend == STORE_LMDB && stat(data_path, &st) == 0 && st.st_size > 0;
    if (!exists) chmod(dir, 0700); /* first start: a pre-made dir (mkdir -p) gets tightened */

    uint8_t *mk = sodium_malloc(STORE_MASTER_KEY_LEN);
    keys *k = sodium_malloc(sizeof *k);
    store *s = calloc(1, sizeof *s);
    if (!mk || !k || !s) {
        sodium_free(mk);
        sodium_free(k);
        free(s);
        store_seterr(err, errn, "out of memory");
        return RT_RESOURCE_EXHAUSTED;
    }
    s->k = k;
    const char *kp = opt->key_path ? opt->key_path : key_path;
    rt_status rs = read_key_file(kp, mk, err, errn);
    if (rs == RT_NOT_FOUND) {
        int probe = opt->backend == STORE_POSTGRES ? store_pg_probe(opt) : 0;
        if (probe > 0) exists = true;
        if (opt->key_path) {
            /* A configured key is provisioned by the operator: never invent one. */
        } else if (probe < 0) {
            store_seterr(err, errn, "cannot reach the database to check for an existing store");
            rs = RT_UNAVAILABLE;
        } else if (exists) {
            store_seterr(err, errn,
                         "store %s exists but its master key %s is missing: refusing to create a "
                         "new key (restore the key file or configure its path)",
                         dir, kp);
            rs = RT_FAILED_PRECONDITION;
        } else {
            rs = create_key_file(dir, kp, mk, err, errn);
        }
    }
    if (rs != RT_OK) goto fail;
    crypto_kdf_derive_from_key(k->rec, sizeof k->rec, KDF_REC, KDF_CTX, mk);
    crypto_kdf_derive_from_key(k->idx, sizeof k->idx, KDF_IDX, KDF_CTX, mk);
    crypto_kdf_derive_from_key(k->root, sizeof k->root, KDF_ROOT, KDF_CTX, mk);
    sodium_free(mk);
    mk = NULL;

    int rc;
    if (opt->backend == STORE_POSTGRES) {
        if ((rs = store_pg_open(s, opt, err, errn)) != RT_OK) goto fail;
    } else if ((rc = mdb_env_create(&s->env)) ||
               (rc = mdb_env_set_mapsize(s->env,
                                         opt->map_size ? opt->map_size : DEFAULT_MAP_SIZE)) ||
               (rc = mdb_env_set_maxreaders(s->env, opt->max_readers ? opt->max_readers
                                                                     : DEFAULT_READERS)) ||
               (rc = mdb_env_set_maxdbs(s->env, 4)) ||
               (rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600))) {
        store_seterr(err, errn, "lmdb open %s: %s", dir, mdb_strerror(rc));
        rs = mdb_status(rc);
        goto fail;
    }
    if (s->env) {
        if ((rs = check_keys_and_index(s, err, errn)) != RT_OK) goto fail;
        find_map(s);
    }

    s->group_commit = !opt->no_group_commit;
    s->max_batch = opt->max_batch ? opt->max_batch : DEFAULT_BATCH;
    s->persist.load = persist_load;
    s->persist.save = persist_save;
    s->persist.ud = s;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        store_seterr(err, errn, "cannot start committer thread");
        rs = RT_RESOURCE_EXHAUSTED;
        if (s->pg) store_pg_close(s);
        goto fail;
    }
    *out = s;
    return RT_OK;
fail:
    if (s->env) mdb_env_close(s->env);
    sodium_free(mk);
    sodium_free(k);
    free(s);
    return rs;
}

void store_close(store *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->committer, NULL); /* drains the queue first: every callback fires */
    if (s->pg) store_pg_close(s);
    if (s->env) mdb_env_close(s->env);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sodium_memzero(s->acc, ACC_LEN);
    sodium_free(s->k);
    free(s);
}

/* ------------------------------------------------------------ records -- */

rt_status store_open_record(const store *s, const rt_key *key, uint64_t want, const uint8_t *p,
                            size_t n, uint8_t **rec, size_t *len)
{
    if (n < HDR_LEN + TAG_LEN || n - HDR_LEN - TAG_LEN > STORE_MAX_RECORD || p[0] != REC_FORMAT ||
        p[1] || p[2] || p[3] || store_get_u64(p + 4) != want)
        return RT_DATA_LOSS; /* malformed, or an older/newer record than the index says */
    size_t plen = n - HDR_LEN - TAG_LEN;
    uint8_t *pt = malloc(plen ? plen : 1);
    if (!pt) return RT_RESOURCE_EXHAUSTED;
    uint8_t ad[12 + RT_KEY_LEN];
    rec_ad(p, key, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, p + HDR_LEN, n - HDR_LEN, ad,
                                                   sizeof ad, p + 12, s->k->rec) != 0) {
        sodium_memzero(pt, plen);
        free(pt);
        return RT_DATA_LOSS;
    }
    *rec = pt;
    *len = plen;
    return RT_OK;
}

rt_status store_get(store *s, const rt_key *key, uint8_t **rec, size_t *len, uint64_t *version)
{
    *rec = NULL;
    *len = 0;
    if (s->pg) {
        uint8_t *sealed = NULL;
        size_t sl = 0;
        uint64_t want = 0;
        rt_status st = store_pg_get(s, key, &sealed, &sl, &want);
        if (st == RT_OK) st = store_open_record(s, key, want, sealed, sl, rec, len);
        free(sealed);
        if (st == RT_OK) *version = want;
        return st;
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return mdb_status(rc);
    MDB_val k = {RT_KEY_LEN, (void *)key->b}, iv, rv;
    rt_status st;
    rc = mdb_get(txn, s->db_ver, &k, &iv);
    if (rc == MDB_NOTFOUND) {
        /* A record the index does not know was planted behind our back. */
        rc = mdb_get(txn, s->db_rec, &k, &rv);
        st = rc == MDB_NOTFOUND ? RT_NOT_FOUND : rc ? mdb_status(rc) : RT_DATA_LOSS;
        goto out;
    }
    if (rc) {
        st = mdb_status(rc);
        goto out;
    }
    if (iv.mv_size != 8) {
        st = RT_DATA_LOSS;
        goto out;
    }
    uint64_t want = store_get_u64(iv.mv_data);
    rc = mdb_get(txn, s->db_rec, &k, &rv);
    if (rc) {
        st = rc == MDB_NOTFOUND ? RT_DATA_LOSS : mdb_status(rc); /* deleted behind the index */
        goto out;
    }
    st = store_open_record(s, key, want, rv.mv_data, rv.mv_size, rec, len);
    if (st == RT_OK) *version = want;
out:
    mdb_txn_abort(txn);
    return st;
}

void store_put(store *s, const rt_key *key, const uint8_t *rec, size_t len, uint64_t version,
               store_done_cb done, void *arg)
{
    if (len > STORE_MAX_RECORD || (len && !rec) || version == 0) {
        done(arg, RT_INVALID_ARGUMENT);
        return;
    }
    req *r = calloc(1, sizeof *r);
    uint8_t *sealed = malloc(HDR_LEN + len + TAG_LEN);
    if (!r || !sealed) {
        free(r);
        free(sealed);
        done(arg, RT_RESOURCE_EXHAUSTED);
        return;
    }
    sealed[0] = REC_FORMAT;
    sealed[1] = sealed[2] = sealed[3] = 0;
    store_put_u64(sealed + 4, version);
    randombytes_buf(sealed + 12, NONCE_LEN);
    uint8_t ad[12 + RT_KEY_LEN];
    rec_ad(sealed, key, ad);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + HDR_LEN, NULL, rec, len, ad, sizeof ad,
                                               NULL, sealed + 12, s->k->rec);
    r->kind = REQ_PUT;
    r->key = *key;
    r->version = version;
    r->sealed = sealed;
    r->sealed_len = HDR_LEN + len + TAG_LEN;
    r->done = done;
    r->arg = arg;
    if (s->pg) store_pg_lease_of(s, key, r);
    if (!enqueue(s, r)) {
        req_free(r);
        done(arg, RT_UNAVAILABLE);
    }
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rt_status st;
} waiter;

static void waiter_done(void *arg, rt_status st)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static rt_status waiter_wait(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return w->st;
}

rt_status store_put_sync(store *s, const rt_key *key, const uint8_t *rec, size_t len,
                         uint64_t version)
{
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    store_put(s, key, rec, len, version, waiter_done, &w);
    return waiter_wait(&w);
}

static rt_status delete_req(store *s, const rt_key *key, int kind)
{
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    req *r = calloc(1, sizeof *r);
    if (!r) {
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return RT_RESOURCE_EXHAUSTED;
    }
    r->kind = s->pg ? REQ_DELETE : kind; /* PostgreSQL: see store_wipe in store.h */
    r->key = *key;
    if (s->pg) store_pg_lease_of(s, key, r);
    r->done = waiter_done;
    r->arg = &w;
    if (!enqueue(s, r)) {
        req_free(r);
        waiter_done(&w, RT_UNAVAILABLE);
    }
    return waiter_wait(&w);
}

rt_status store_delete(store *s, const rt_key *key)
{
    return delete_req(s, key, REQ_DELETE);
}

rt_status store_wipe(store *s, const rt_key *key)
{
    return delete_req(s, key, REQ_WIPE);
}

rt_status store_iterate(store *s, store_iter_cb cb, void *arg)
{
    return store_iterate_from(s, NULL, cb, arg);
}

rt_status store_iterate_from(store *s, const rt_key *after, store_iter_cb cb, void *arg)
{
    if (s->pg) return store_pg_iterate(s, after, cb, arg);
    MDB_txn *txn;
    MDB_cursor *c;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return mdb_status(rc);
    if ((rc = mdb_cursor_open(txn, s->db_ver, &c))) {
        mdb_txn_abort(txn);
        return mdb_status(rc);
    }
    MDB_val k, v;
    rt_status st = RT_OK;
    if (after) {
        /* SET_RANGE lands on the first key >= after; step over after itself. */
        k.mv_size = RT_KEY_LEN;
        k.mv_data = (void *)after->b;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (!rc && k.mv_size == RT_KEY_LEN && !memcmp(k.mv_data, after->b, RT_KEY_LEN))
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != RT_KEY_LEN || v.mv_size != 8) {
            st = RT_DATA_LOSS;
            break;
        }
        rt_key key;
        memcpy(key.b, k.mv_data, RT_KEY_LEN);
        if (cb(arg, &key, store_get_u64(v.mv_data))) break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) st = mdb_status(rc);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return st;
}

/* --------------------------------------------------------------- meta -- */

static rt_status meta_write(store *s, const uint8_t *key, const uint8_t *val, size_t len, bool del)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return mdb_status(rc);
    MDB_val k = {STORE_KEY_LEN, (void *)key}, v = {len, (void *)val};
    rc = del ? mdb_del(txn, s->db_meta, &k, NULL) : mdb_put(txn, s->db_meta, &k, &v, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return mdb_status(rc);
    }
    return mdb_status(mdb_txn_commit(txn));
}

rt_status store_put_meta(store *s, const uint8_t key[STORE_KEY_LEN], const uint8_t *val, size_t len)
{
    if (len > STORE_MAX_META || (len && !val)) return RT_INVALID_ARGUMENT;
    if (s->pg) return store_pg_meta(s, 1, key, val, len, NULL, NULL);
    return meta_write(s, key, val, len, false);
}

rt_status store_delete_meta(store *s, const uint8_t key[STORE_KEY_LEN])
{
    if (s->pg) return store_pg_meta(s, 2, key, NULL, 0, NULL, NULL);
    return meta_write(s, key, NULL, 0, true);
}

rt_status store_cas_meta(store *s, const uint8_t key[STORE_KEY_LEN], const uint8_t *expect,
                         size_t expect_len, const uint8_t *val, size_t len)
{
    if (len > STORE_MAX_META || (len && !val) || (expect_len && !expect))
        return RT_INVALID_ARGUMENT;
    if (s->pg) return store_pg_cas_meta(s, key, expect, expect_len, val, len);
    /* LMDB has one writer at a time: the compare and the write are atomic
     * inside the write transaction. */
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return mdb_status(rc);
    MDB_val k = {STORE_KEY_LEN, (void *)key}, cur, v = {len, (void *)val};
    rc = mdb_get(txn, s->db_meta, &k, &cur);
    int same =
        expect ? rc == 0 && cur.mv_size == expect_len && !memcmp(cur.mv_data, expect, expect_len)
               : rc == MDB_NOTFOUND;
    if (rc && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_status(rc);
    }
    if (!same) {
        mdb_txn_abort(txn);
        return RT_ABORTED;
    }
    if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0))) {
        mdb_txn_abort(txn);
        return mdb_status(rc);
    }
    return mdb_status(mdb_txn_commit(txn));
}

rt_status store_get_meta(store *s, const uint8_t key[STORE_KEY_LEN], uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (s->pg) return store_pg_meta(s, 0, key, NULL, 0, out, len);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return mdb_status(rc);
    MDB_val k = {STORE_KEY_LEN, (void *)key}, v;
    rt_status st;
    rc = mdb_get(txn, s->db_meta, &k, &v);
    if (rc) {
        st = mdb_status(rc);
    } else if (v.mv_size > STORE_MAX_META) {
        st = RT_DATA_LOSS;
    } else if (!(*out = malloc(v.mv_size ? v.mv_size : 1))) {
        st = RT_RESOURCE_EXHAUSTED;
    } else {
        memcpy(*out, v.mv_data, v.mv_size);
        *len = v.mv_size;
        st = RT_OK;
    }
    mdb_txn_abort(txn);
    return st;
}

/* --------------------------------------------------------------- misc -- */

const rt_persist *store_persist(store *s)
{
    return &s->persist;
}

void store_get_stats(store *s, store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
    if (s->pg) store_pg_stats(s, out);
}

rt_status store_trim(store *s)
{
    if (s->pg) return RT_UNIMPLEMENTED; /* nothing of the database is mapped here */
    if (!s->map_base) return RT_UNIMPLEMENTED;
    MDB_envinfo ei;
    MDB_stat ms;
    if (mdb_env_info(s->env, &ei) || mdb_env_stat(s->env, &ms)) return RT_UNAVAILABLE;
    /* Only the part of the map that holds pages: the rest was never touched. */
    size_t len = ((size_t)ei.me_last_pgno + 1) * ms.ms_psize;
    if (len > s->map_len) len = s->map_len;
    /* Without MDB_WRITEMAP the map is read-only and LMDB writes with pwrite,
     * so nothing here is dirty: dropping the mappings loses nothing, and a
     * concurrent reader just takes a minor fault back into the page cache. */
    return madvise(s->map_base, len, MADV_DONTNEED) == 0 ? RT_OK : RT_UNAVAILABLE;
}

/* ------------------------------------------------------------- leases -- */

/* On LMDB one node owns everything: every lease is this node's. */
rt_status store_lease_acquire(store *s, const rt_key *key, store_lease *out)
{
    if (s->pg) return store_pg_lease_acquire(s, key, out);
    memset(out, 0, sizeof *out);
    out->held = 1;
    return RT_OK;
}

int store_lease_valid(store *s, const rt_key *key)
{
    return s->pg ? store_pg_lease_valid(s, key) : 1;
}

rt_status store_lease_release(store *s, const rt_key *key)
{
    return s->pg ? store_pg_lease_release(s, key) : RT_OK;
}

rt_status store_lease_release_all(store *s)
{
    return s->pg ? store_pg_lease_release_all(s) : RT_OK;
}

int store_reachable(store *s)
{
    return s->pg ? store_pg_reachable(s) : 1;
}

const char *store_backend_name(const store *s)
{
    return s->pg ? "postgres" : "lmdb";
}

rt_status store_inject_lease_pause(store *s, int on)
{
#if CG_FAULT_INJECTION
    if (!s->pg) return RT_UNIMPLEMENTED;
    store_pg_pause(s, on);
    return RT_OK;
#else
    (void)s;
    (void)on;
    return RT_UNIMPLEMENTED;
#endif
}

rt_status store_inject_commit_failures(store *s, unsigned n, int err)
{
#if CG_FAULT_INJECTION
    pthread_mutex_lock(&s->mu);
    s->inject_fail = n;
    s->inject_err = err;
    pthread_mutex_unlock(&s->mu);
    return RT_OK;
#else
    (void)s;
    (void)n;
    (void)err;
    return RT_UNIMPLEMENTED;
#endif
}
