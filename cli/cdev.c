/*
 * cdev.c — the device library of cosigner_device.h: one device of a wallet,
 * on top of the simulated-devices engine of dev.c (a dev_user with a single
 * device marked is_dev) and the native ChillDKG / BIP 445 code.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cosigner_device.h"
#include "cx.h"
#include "dev.h"
#include "net.h"

_Static_assert(CDEV_MAX_PARTICIPANTS == DEV_MAX_N, "one bound for the library and the engine");
_Static_assert(CDEV_MAX_PARTICIPANTS <= CG_DKG_MAX_N, "ChillDKG bound");
_Static_assert(CDEV_TOKEN_MAX + 1 == sizeof(((dev_wallet *)0)->token), "token room");

/* A state file is a few KiB (the recovery data dominates, < 13 KiB of hex at
 * n = 32); anything much larger is not one. */
#define STATE_FILE_MAX (64 * 1024)

struct cdev_device {
    uint8_t seckey[32]; /* secret */
    uint8_t hostpk[33];
    int has_wallet;
    uint32_t n, t, index;
    uint8_t hostpubkeys[CDEV_MAX_PARTICIPANTS][33];
    uint8_t wallet_id[32];
    uint8_t thresh_pk[33];
    uint8_t secshare[32]; /* secret */
    uint8_t pubshares[CDEV_MAX_PARTICIPANTS][33];
    uint8_t recovery[CG_DKG_RECOVERY_MAX];
    size_t recovery_len;
    long http_code;
    char err_code[32];
    char err[256];
};

const char *cdev_status_str(cdev_status st)
{
    switch (st) {
    case CDEV_OK:
        return "ok";
    case CDEV_ERR_ARG:
        return "invalid argument";
    case CDEV_ERR_IO:
        return "i/o error";
    case CDEV_ERR_FORMAT:
        return "malformed or foreign data";
    case CDEV_ERR_TRANSPORT:
        return "service unreachable";
    case CDEV_ERR_REFUSED:
        return "refused by the service";
    case CDEV_ERR_BAD_REPLY:
        return "bad reply from the service";
    case CDEV_ERR_PROTOCOL:
        return "protocol failure";
    case CDEV_ERR_VERIFY:
        return "signature does not verify";
    case CDEV_ERR_NOMEM:
        return "out of memory";
    case CDEV_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

cdev_status cdev_init(void)
{
    return cx_init() ? CDEV_OK : CDEV_ERR_INTERNAL;
}

void cdev_wipe(void *p, size_t len)
{
    cx_wipe(p, len);
}

static void clear_err(cdev_device *d)
{
    d->http_code = 0;
    d->err_code[0] = 0;
    d->err[0] = 0;
}

/* Records why a call failed and returns st, so failures read as one line. */
static cdev_status failf(cdev_device *d, cdev_status st, const char *code, const char *fmt,
                         const char *detail)
{
    if (!d) return st;
    snprintf(d->err_code, sizeof d->err_code, "%s", code);
    snprintf(d->err, sizeof d->err, fmt, detail ? detail : "");
    return st;
}

static cdev_status fail(cdev_device *d, cdev_status st, const char *msg)
{
    return failf(d, st, "LOCAL", "%s", msg);
}

/* ---- files --------------------------------------------------------------- */

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    int ok = fsync(fd) == 0;
    return close(fd) == 0 && ok;
}

/*
 * Replaces path with len bytes of data so that a crash leaves either the old
 * file or the new one, never a torn one: a private temporary (O_EXCL, 0600
 * from its creation, so it never exists with wider permissions and never
 * follows a planted symlink), fsync, rename over path, fsync the directory
 * so the rename itself is durable.
 */
static int write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) return 0;
    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left over by a run that died between create and rename. */
        if (unlink(tmp) != 0) return 0;
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    }
    if (fd < 0) return 0;
    const uint8_t *p = data;
    size_t off = 0;
    int ok = 1;
    while (ok && off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            ok = 0;
        else
            off += (size_t)w;
    }
    ok = ok && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        unlink(tmp);
        return 0;
    }
    return fsync_dir_of(path);
}

/* Reads at most cap - 1 bytes of path into buf, NUL-terminated. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t off = 0;
    for (;;) {
        if (off == cap - 1) {
            close(fd);
            return 0; /* too large to be ours */
        }
        ssize_t r = read(fd, buf + off, cap - 1 - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            close(fd);
            return 0;
        }
        if (r == 0) break;
        off += (size_t)r;
    }
    close(fd);
    buf[off] = 0;
    *len = off;
    return 1;
}

/* ---- keys ------------------------------------------------------------------ */

cdev_status cdev_keygen(uint8_t seckey[CDEV_SECKEY_LEN], uint8_t pubkey[CDEV_PUBKEY_LEN])
{
    if (!seckey || !pubkey) return CDEV_ERR_ARG;
    if (cdev_init() != CDEV_OK) return CDEV_ERR_INTERNAL;
    return dev_keygen(seckey, pubkey) ? CDEV_OK : CDEV_ERR_INTERNAL;
}

cdev_status cdev_key_save(const char *path, const uint8_t seckey[CDEV_SECKEY_LEN])
{
    if (!path || !seckey) return CDEV_ERR_ARG;
    char line[66];
    net_hex_encode(line, seckey, 32);
    line[64] = '\n';
    line[65] = 0;
    int ok = write_atomic(path, line, 65);
    cx_wipe(line, sizeof line);
    return ok ? CDEV_OK : CDEV_ERR_IO;
}

cdev_status cdev_key_load(const char *path, uint8_t seckey[CDEV_SECKEY_LEN])
{
    if (!path || !seckey) return CDEV_ERR_ARG;
    if (cdev_init() != CDEV_OK) return CDEV_ERR_INTERNAL;
    char buf[128];
    size_t n;
    if (!read_small(path, buf, sizeof buf, &n)) return CDEV_ERR_IO;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    uint8_t pk[33];
    int ok = net_hex_decode(seckey, 32, buf, n) && cx_pubkey_from_seckey(pk, seckey);
    cx_wipe(buf, sizeof buf);
    if (!ok) cx_wipe(seckey, 32);
    return ok ? CDEV_OK : CDEV_ERR_FORMAT;
}

/* ---- the device -------------------------------------------------------------- */

cdev_status cdev_new(cdev_device **out, const uint8_t seckey[CDEV_SECKEY_LEN])
{
    if (!out || !seckey) return CDEV_ERR_ARG;
    *out = NULL;
    if (cdev_init() != CDEV_OK) return CDEV_ERR_INTERNAL;
    cdev_device *d = calloc(1, sizeof *d);
    if (!d) return CDEV_ERR_NOMEM;
    if (!cx_pubkey_from_seckey(d->hostpk, seckey)) {
        free(d);
        return CDEV_ERR_FORMAT;
    }
    memcpy(d->seckey, seckey, 32);
    *out = d;
    return CDEV_OK;
}

void cdev_free(cdev_device *d)
{
    if (!d) return;
    cx_wipe(d, sizeof *d);
    free(d);
}

void cdev_hostpubkey(const cdev_device *d, uint8_t pubkey[CDEV_PUBKEY_LEN])
{
    memcpy(pubkey, d->hostpk, 33);
}

const char *cdev_error(const cdev_device *d)
{
    return d ? d->err : "";
}

long cdev_http_code(const cdev_device *d)
{
    return d ? d->http_code : 0;
}

const char *cdev_error_code(const cdev_device *d)
{
    return d ? d->err_code : "";
}

cdev_status cdev_wallet(const cdev_device *d, cdev_wallet_info *out)
{
    if (!d || !out || !d->has_wallet) return CDEV_ERR_ARG;
    memcpy(out->wallet_id, d->wallet_id, 32);
    memcpy(out->thresh_pubkey, d->thresh_pk, 33);
    out->n = d->n;
    out->t = d->t;
    out->index = d->index;
    out->recovery_len = d->recovery_len;
    return CDEV_OK;
}

cdev_status cdev_wallet_hostpubkey(const cdev_device *d, uint32_t i,
                                   uint8_t pubkey[CDEV_PUBKEY_LEN])
{
    if (!d || !pubkey || !d->has_wallet || i >= d->n) return CDEV_ERR_ARG;
    memcpy(pubkey, d->hostpubkeys[i], 33);
    return CDEV_OK;
}

cdev_status cdev_recovery_data(const cdev_device *d, uint8_t *buf, size_t cap, size_t *len)
{
    if (!d || !len) return CDEV_ERR_ARG;
    *len = d->has_wallet ? d->recovery_len : 0;
    if (!*len || !buf || cap < *len) return CDEV_ERR_ARG;
    memcpy(buf, d->recovery, *len);
    return CDEV_OK;
}

/* Position of pk among the params' host keys, or -1. */
static int index_of(const uint8_t (*hpk)[33], uint32_t n, const uint8_t pk[33])
{
    for (uint32_t i = 0; i < n; i++)
        if (!memcmp(hpk[i], pk, 33)) return (int)i;
    return -1;
}

static int params_of(cg_dkg_params *p, const uint8_t (*hpk)[33], uint32_t n, uint32_t t)
{
    if (n < 1 || n > CDEV_MAX_PARTICIPANTS || t < 1 || t > n) return 0;
    memset(p, 0, sizeof *p);
    p->n = n;
    p->t = t;
    memcpy(p->hostpubkeys, hpk, 33 * (size_t)n);
    return cg_dkg_params_validate(p, NULL) == RT_OK;
}

/*
 * Takes over a ChillDKG output as the device's wallet, after checking what a
 * device can check on its own: the params are valid and list this device's
 * key, and its secret share is the discrete log of its public share (so a
 * state never pairs a share with the wrong index).
 */
static cdev_status adopt(cdev_device *d, const cg_dkg_params *p, const uint8_t wallet_id[32],
                         const uint8_t secshare[32], const uint8_t thresh_pk[33],
                         const uint8_t (*pubshares)[33], const uint8_t *rec, size_t rec_len)
{
    int idx = index_of((const uint8_t(*)[33])p->hostpubkeys, p->n, d->hostpk);
    if (idx < 0) return fail(d, CDEV_ERR_FORMAT, "this device's host key is not in the params");
    uint8_t P[64], Q[64];
    if (!cx_scalar_check(secshare) || cx_scalar_is_zero(secshare) ||
        !cx_point_mul_base(P, secshare) || !cx_point_parse(Q, pubshares[idx], 0) ||
        !cx_point_eq(P, Q))
        return fail(d, CDEV_ERR_FORMAT, "the secret share does not match this device's pubshare");
    if (!cx_point_parse(Q, thresh_pk, 0))
        return fail(d, CDEV_ERR_FORMAT, "the threshold key is not a valid point");
    for (uint32_t i = 0; i < p->n; i++)
        if (!cx_point_parse(Q, pubshares[i], 0))
            return fail(d, CDEV_ERR_FORMAT, "a public share is not a valid point");
    if (rec_len && rec_len != CG_DKG_RECOVERY_LEN(p->t, p->n))
        return fail(d, CDEV_ERR_FORMAT, "the recovery data has the wrong length");
    d->has_wallet = 1;
    d->n = p->n;
    d->t = p->t;
    d->index = (uint32_t)idx;
    memcpy(d->hostpubkeys, p->hostpubkeys, 33 * (size_t)p->n);
    memcpy(d->wallet_id, wallet_id, 32);
    memcpy(d->secshare, secshare, 32);
    memcpy(d->thresh_pk, thresh_pk, 33);
    memcpy(d->pubshares, pubshares, 33 * (size_t)p->n);
    if (rec_len) memcpy(d->recovery, rec, rec_len);
    d->recovery_len = rec_len;
    return CDEV_OK;
}

/* ---- the service --------------------------------------------------------------- */

cdev_status cdev_service_hostpubkey(const char *url, uint8_t pubkey[CDEV_PUBKEY_LEN])
{
    if (!url || !pubkey) return CDEV_ERR_ARG;
    if (cdev_init() != CDEV_OK) return CDEV_ERR_INTERNAL;
    json_t *j = NULL;
    long code = http_get_json(url, "/v1/info", &j);
    cdev_status st = code == 0 ? CDEV_ERR_TRANSPORT : code != 200 ? CDEV_ERR_REFUSED : CDEV_OK;
    if (st == CDEV_OK) {
        json_t *h = json_object_get(j, "hostpubkey");
        uint8_t P[64];
        if (!json_is_string(h) ||
            !net_hex_decode(pubkey, 33, json_string_value(h), json_string_length(h)) ||
            !cx_point_parse(P, pubkey, 0))
            st = CDEV_ERR_BAD_REPLY;
    }
    json_decref(j);
    return st;
}

typedef struct op_result {
    int ok;
} op_result;

static void on_op(dev_user *u, int ok, long code, const char *msg)
{
    (void)code;
    (void)msg;
    ((op_result *)u->ud)->ok = ok;
}

/* A dev_user for this device alone: the engine posts only for is_dev
 * participants, so it plays exactly this device's part. */
static dev_user *one_device_user(const cdev_device *d, uint32_t n, uint32_t t,
                                 const uint8_t (*hpk)[33], uint32_t idx)
{
    dev_user *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->w.n = n;
    u->w.t = t;
    u->w.svc = idx; /* unused by the engine's DKG and signing */
    memcpy(u->w.hostpk, hpk, 33 * (size_t)n);
    u->w.is_dev[idx] = 1;
    memcpy(u->w.seckey[idx], d->seckey, 32);
    u->done = on_op;
    return u;
}

static void free_user(dev_user *u)
{
    if (!u) return;
    dev_user_release(u);
    cx_wipe(u, sizeof *u);
    free(u);
}

/* Runs the operation started by start() to completion on a client of its own. */
static cdev_status run_op(cdev_device *d, dev_user *u, const char *url,
                          void (*start)(dev_user *, void *), void *arg)
{
    op_result r = {0};
    u->ud = &r;
    u->hc = http_new(url, 4);
    if (!u->hc) return fail(d, CDEV_ERR_NOMEM, "out of memory");
    start(u, arg);
    http_run(u->hc, NULL, NULL);
    http_free(u->hc);
    u->hc = NULL;
    if (r.ok) return CDEV_OK;
    const char *name = u->fail_code_name[0] ? u->fail_code_name : "LOCAL";
    cdev_status st = !strcmp(name, "TRANSPORT")       ? CDEV_ERR_TRANSPORT
                     : !strcmp(name, "BAD_REPLY")     ? CDEV_ERR_BAD_REPLY
                     : !strcmp(name, "BAD_SIGNATURE") ? CDEV_ERR_VERIFY
                     : !strcmp(name, "LOCAL")         ? CDEV_ERR_PROTOCOL
                                                      : CDEV_ERR_REFUSED;
    if (st == CDEV_ERR_REFUSED) d->http_code = u->fail_code;
    return failf(d, st, name, "%s", u->fail_msg[0] ? u->fail_msg : "operation failed");
}

static int token_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > CDEV_TOKEN_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) return 0;
    return 1;
}

static void start_dkg(dev_user *u, void *arg)
{
    (void)arg;
    dev_dkg(u);
}

cdev_status cdev_dkg_join(cdev_device *d, const char *url,
                          const uint8_t (*hostpubkeys)[CDEV_PUBKEY_LEN], uint32_t n, uint32_t t,
                          const char *token)
{
    if (!d) return CDEV_ERR_ARG;
    clear_err(d);
    if (!url || !hostpubkeys) return fail(d, CDEV_ERR_ARG, "missing argument");
    if (token && !token_ok(token))
        return fail(d, CDEV_ERR_ARG, "the enrollment token must be 1..79 hex digits");
    cg_dkg_params p;
    if (!params_of(&p, hostpubkeys, n, t))
        return fail(d, CDEV_ERR_ARG,
                    "invalid params: need 1 <= t <= n <= 32 and distinct valid host keys");
    int idx = index_of(hostpubkeys, n, d->hostpk);
    if (idx < 0) return fail(d, CDEV_ERR_ARG, "this device's host key is not in the params");
    uint8_t wid[32];
    if (cg_dkg_params_hash(wid, &p, NULL) != RT_OK)
        return fail(d, CDEV_ERR_INTERNAL, "params hash failed");
    dev_user *u = one_device_user(d, n, t, hostpubkeys, (uint32_t)idx);
    uint8_t *rec = malloc(CG_DKG_RECOVERY_MAX);
    if (!u || !rec) {
        free_user(u);
        free(rec);
        return fail(d, CDEV_ERR_NOMEM, "out of memory");
    }
    if (token) snprintf(u->w.token, sizeof u->w.token, "%s", token);
    u->recovery = rec;
    u->recovery_cap = CG_DKG_RECOVERY_MAX;
    cdev_status st = run_op(d, u, url, start_dkg, NULL);
    /* The service names the wallet; a device trusts only its own hash of
     * the params (its CertEq signature already covers them). */
    if (st == CDEV_OK && memcmp(u->w.wallet_id, wid, 32))
        st = failf(d, CDEV_ERR_BAD_REPLY, "BAD_REPLY", "%s",
                   "the service's wallet id is not the params hash");
    if (st == CDEV_OK && !u->recovery_len)
        st = fail(d, CDEV_ERR_INTERNAL, "no recovery data after finalize");
    if (st == CDEV_OK)
        st = adopt(d, &p, wid, u->w.secshare[idx], u->w.thresh_pk,
                   (const uint8_t(*)[33])u->w.pubshares, rec, u->recovery_len);
    free(rec);
    free_user(u);
    return st;
}

typedef struct sign_args {
    const uint32_t *ids;
    size_t count;
    const uint8_t *msg;
    size_t msg_len;
    int taproot;
    const uint8_t *merkle_root;
} sign_args;

static void start_sign(dev_user *u, void *arg)
{
    const sign_args *a = arg;
    dev_sign(u, a->ids, a->count, a->msg, a->msg_len, a->taproot, a->merkle_root);
}

cdev_status cdev_sign_join(cdev_device *d, const char *url,
                           const uint8_t session_id[CDEV_SESSION_ID_LEN], const uint32_t *signers,
                           size_t count, const uint8_t *msg, size_t msg_len, int taproot,
                           const uint8_t *merkle_root, uint8_t sig[CDEV_SIG_LEN],
                           uint8_t pubkey_xonly[32])
{
    if (!d) return CDEV_ERR_ARG;
    clear_err(d);
    if (!d->has_wallet) return fail(d, CDEV_ERR_ARG, "no wallet: join a DKG or load a state");
    if (!url || !session_id || !signers || (!msg && msg_len))
        return fail(d, CDEV_ERR_ARG, "missing argument");
    if (msg_len > CDEV_MSG_MAX) return fail(d, CDEV_ERR_ARG, "message longer than 256 bytes");
    if (merkle_root && !taproot) return fail(d, CDEV_ERR_ARG, "a merkle root needs taproot");
    if (count < d->t || count > d->n)
        return fail(d, CDEV_ERR_ARG, "the signer set must have t..n members");
    /* Ascending order: every signer posts the same list, whatever order
     * each was given it in. */
    uint32_t ids[CDEV_MAX_PARTICIPANTS];
    int mine = 0;
    for (size_t k = 0; k < count; k++) {
        uint32_t v = signers[k];
        if (v >= d->n) return fail(d, CDEV_ERR_ARG, "a signer index is not a participant");
        size_t j = k;
        while (j && ids[j - 1] > v) {
            ids[j] = ids[j - 1];
            j--;
        }
        if (j && ids[j - 1] == v) return fail(d, CDEV_ERR_ARG, "a signer is listed twice");
        ids[j] = v;
        mine |= v == d->index;
    }
    if (!mine) return fail(d, CDEV_ERR_ARG, "this device is not in the signer set");
    dev_user *u = one_device_user(d, d->n, d->t, (const uint8_t(*)[33])d->hostpubkeys, d->index);
    if (!u) return fail(d, CDEV_ERR_NOMEM, "out of memory");
    memcpy(u->w.secshare[d->index], d->secshare, 32);
    memcpy(u->w.thresh_pk, d->thresh_pk, 33);
    memcpy(u->w.pubshares, d->pubshares, 33 * (size_t)d->n);
    memcpy(u->w.wallet_id, d->wallet_id, 32);
    u->w.ready = 1;
    u->fixed_session_id = 1;
    memcpy(u->session_id, session_id, 32);
    static const uint8_t empty;
    sign_args a = {ids, count, msg ? msg : &empty, msg_len, taproot, merkle_root};
    cdev_status st = run_op(d, u, url, start_sign, &a);
    /* The engine verified the signature already; checked here once more so
     * this function's promise does not rest on its internals. */
    if (st == CDEV_OK && !dev_verify_bip340(u->sig, u->msg, u->msg_len, u->verify_xonly))
        st = failf(d, CDEV_ERR_VERIFY, "BAD_SIGNATURE", "%s", "the signature does not verify");
    if (st == CDEV_OK) {
        if (sig) memcpy(sig, u->sig, 64);
        if (pubkey_xonly) memcpy(pubkey_xonly, u->verify_xonly, 32);
    }
    free_user(u);
    return st;
}

/* ---- recovery ---------------------------------------------------------------------- */

cdev_status cdev_recover_from(cdev_device *d, const uint8_t *recovery, size_t recovery_len,
                              const uint8_t *wallet_id)
{
    if (!d) return CDEV_ERR_ARG;
    clear_err(d);
    if (!recovery || !recovery_len || recovery_len > CG_DKG_RECOVERY_MAX)
        return fail(d, CDEV_ERR_FORMAT, "recovery data of an impossible length");
    typedef struct work {
        cg_dkg_output out;
        cg_dkg_params p;
        cg_dkg_scratch scratch;
    } work;
    work *w = calloc(1, sizeof *w);
    if (!w) return fail(d, CDEV_ERR_NOMEM, "out of memory");
    cg_dkg_error e = {0};
    cdev_status st = CDEV_OK;
    uint8_t wid[32];
    if (cg_dkg_recover(&w->out, &w->p, d->seckey, 32, recovery, recovery_len, &w->scratch, &e) !=
        RT_OK)
        st = failf(d, CDEV_ERR_FORMAT, "LOCAL", "ChillDKG recovery failed: %s",
                   e.msg ? e.msg : cg_dkg_error_kind_name(e.kind));
    else if (!w->out.has_secshare)
        st = fail(d, CDEV_ERR_INTERNAL, "recovery gave no secret share");
    else if (cg_dkg_params_hash(wid, &w->p, NULL) != RT_OK)
        st = fail(d, CDEV_ERR_FORMAT, "the recovered params are invalid");
    else if (wallet_id && memcmp(wid, wallet_id, 32))
        st = fail(d, CDEV_ERR_FORMAT, "the recovery data is of another wallet");
    else
        st = adopt(d, &w->p, wid, w->out.secshare, w->out.threshold_pubkey,
                   (const uint8_t(*)[33])w->out.pubshares, recovery, recovery_len);
    cx_wipe(w, sizeof *w);
    free(w);
    return st;
}

typedef struct fetch {
    long code;
    char code_name[32];
    char msg[200];
    uint8_t *buf;
    size_t len;
    int bad;
    const uint8_t *wallet_id;
} fetch;

static void on_recovery(void *arg, long code, json_t *resp, const char *err)
{
    fetch *f = arg;
    f->code = code;
    if (code != 200) {
        json_t *e = json_object_get(resp, "error");
        snprintf(f->code_name, sizeof f->code_name, "%s",
                 !code ? "TRANSPORT" : json_string_value(json_object_get(e, "code")) ?: "NO_CODE");
        snprintf(f->msg, sizeof f->msg, "%s",
                 !code ? (err ? err : "no response")
                       : json_string_value(json_object_get(e, "message")) ?: "(no message)");
        return;
    }
    json_t *w = json_object_get(resp, "wallet_id"), *r = json_object_get(resp, "recovery");
    uint8_t wid[32];
    size_t sl = json_string_length(r);
    if (!json_is_string(w) || !json_is_string(r) ||
        !net_hex_decode(wid, 32, json_string_value(w), json_string_length(w)) ||
        memcmp(wid, f->wallet_id, 32) || sl % 2 || sl / 2 > CG_DKG_RECOVERY_MAX || !sl ||
        !net_hex_decode(f->buf, sl / 2, json_string_value(r), sl)) {
        f->bad = 1;
        return;
    }
    f->len = sl / 2;
}

cdev_status cdev_recover(cdev_device *d, const char *url,
                         const uint8_t wallet_id[CDEV_WALLET_ID_LEN])
{
    if (!d) return CDEV_ERR_ARG;
    clear_err(d);
    if (!url || !wallet_id) return fail(d, CDEV_ERR_ARG, "missing argument");
    fetch f = {.wallet_id = wallet_id};
    f.buf = malloc(CG_DKG_RECOVERY_MAX);
    http_client *c = f.buf ? http_new(url, 1) : NULL;
    if (!c) {
        free(f.buf);
        return fail(d, CDEV_ERR_NOMEM, "out of memory");
    }
    char wid[65], path[128];
    net_hex_encode(wid, wallet_id, 32);
    snprintf(path, sizeof path, "/v1/wallets/%s/recovery", wid);
    http_request(c, "GET", path, NULL, d->seckey, on_recovery, &f);
    http_run(c, NULL, NULL);
    http_free(c);
    cdev_status st;
    if (f.code == 0) {
        st = failf(d, CDEV_ERR_TRANSPORT, "TRANSPORT", "transport: %s", f.msg);
    } else if (f.code != 200) {
        d->http_code = f.code;
        char m[256];
        snprintf(m, sizeof m, "HTTP %ld %s: %s", f.code, f.code_name, f.msg);
        st = failf(d, CDEV_ERR_REFUSED, f.code_name, "%s", m);
    } else if (f.bad) {
        st = failf(d, CDEV_ERR_BAD_REPLY, "BAD_REPLY", "%s",
                   "malformed recovery reply (or of another wallet)");
    } else {
        st = cdev_recover_from(d, f.buf, f.len, wallet_id);
    }
    free(f.buf);
    return st;
}

/* ---- the state file ------------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int ok;
} sbuf;

static void put(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (!b->ok || b->len + n + 1 > b->cap) {
        b->ok = 0;
        return;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void put_hex(sbuf *b, const uint8_t *v, size_t n)
{
    if (!b->ok || b->len + 2 * n + 3 > b->cap) {
        b->ok = 0;
        return;
    }
    b->p[b->len++] = '"';
    net_hex_encode(b->p + b->len, v, n);
    b->len += 2 * n;
    b->p[b->len++] = '"';
    b->p[b->len] = 0;
}

static void put_uint(sbuf *b, uint32_t v)
{
    char s[16];
    snprintf(s, sizeof s, "%u", v);
    put(b, s);
}

static void put_keys(sbuf *b, const uint8_t (*k)[33], uint32_t n)
{
    put(b, "[");
    for (uint32_t i = 0; i < n; i++) {
        if (i) put(b, ", ");
        put_hex(b, k[i], 33);
    }
    put(b, "]");
}

cdev_status cdev_state_save(const cdev_device *d, const char *path)
{
    if (!d || !path || !d->has_wallet) return CDEV_ERR_ARG;
    /* Written by hand rather than through jansson so the one copy of the
     * secret share in text form is a buffer this function wipes. */
    sbuf b = {malloc(STATE_FILE_MAX), 0, STATE_FILE_MAX, 1};
    if (!b.p) return CDEV_ERR_NOMEM;
    b.p[0] = 0;
    put(&b, "{\n  \"version\": 1,\n  \"wallet_id\": ");
    put_hex(&b, d->wallet_id, 32);
    put(&b, ",\n  \"params\": {\"hostpubkeys\": ");
    put_keys(&b, (const uint8_t(*)[33])d->hostpubkeys, d->n);
    put(&b, ", \"t\": ");
    put_uint(&b, d->t);
    put(&b, "},\n  \"index\": ");
    put_uint(&b, d->index);
    put(&b, ",\n  \"secshare\": ");
    put_hex(&b, d->secshare, 32);
    put(&b, ",\n  \"thresh_pubkey\": ");
    put_hex(&b, d->thresh_pk, 33);
    put(&b, ",\n  \"pubshares\": ");
    put_keys(&b, (const uint8_t(*)[33])d->pubshares, d->n);
    if (d->recovery_len) {
        put(&b, ",\n  \"recovery\": ");
        put_hex(&b, d->recovery, d->recovery_len);
    }
    put(&b, "\n}\n");
    cdev_status st = !b.ok                            ? CDEV_ERR_INTERNAL
                     : write_atomic(path, b.p, b.len) ? CDEV_OK
                                                      : CDEV_ERR_IO;
    cx_wipe(b.p, b.cap);
    free(b.p);
    return st;
}

static int jhex(json_t *o, const char *k, uint8_t *out, size_t len)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) &&
           net_hex_decode(out, len, json_string_value(v), json_string_length(v));
}

static int jkeys(json_t *a, uint8_t (*out)[33], uint32_t n)
{
    if (json_array_size(a) != n) return 0;
    for (uint32_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_string(v) ||
            !net_hex_decode(out[i], 33, json_string_value(v), json_string_length(v)))
            return 0;
    }
    return 1;
}

cdev_status cdev_state_load(cdev_device *d, const char *path)
{
    if (!d) return CDEV_ERR_ARG;
    clear_err(d);
    if (!path) return fail(d, CDEV_ERR_ARG, "missing argument");
    typedef struct work {
        char text[STATE_FILE_MAX];
        cg_dkg_params p;
        uint8_t pubshares[CDEV_MAX_PARTICIPANTS][33];
        uint8_t rec[CG_DKG_RECOVERY_MAX];
        uint8_t wid[32], hash[32], thresh[33], secshare[32];
    } work;
    work *w = calloc(1, sizeof *w);
    if (!w) return fail(d, CDEV_ERR_NOMEM, "out of memory");
    size_t len = 0;
    cdev_status st = CDEV_OK;
    json_t *j = NULL;
    if (!read_small(path, w->text, sizeof w->text, &len)) {
        st = fail(d, CDEV_ERR_IO, "cannot read the state file");
        goto out;
    }
    j = json_loadb(w->text, len, 0, NULL);
    json_t *params = json_object_get(j, "params");
    json_t *hpk = json_object_get(params, "hostpubkeys"), *t = json_object_get(params, "t");
    json_t *idx = json_object_get(j, "index"), *ver = json_object_get(j, "version");
    json_t *rec = json_object_get(j, "recovery");
    size_t n = json_array_size(hpk), rl = json_string_length(rec);
    if (!json_is_object(j) || json_integer_value(ver) != 1 || !json_is_integer(t) ||
        !json_is_integer(idx) || n < 1 || n > CDEV_MAX_PARTICIPANTS || json_integer_value(t) < 1 ||
        json_integer_value(t) > (json_int_t)n || json_integer_value(idx) < 0 ||
        json_integer_value(idx) >= (json_int_t)n) {
        st = fail(d, CDEV_ERR_FORMAT, "not a device state file (version 1)");
        goto out;
    }
    w->p.n = (uint32_t)n;
    w->p.t = (uint32_t)json_integer_value(t);
    if (!jkeys(hpk, w->p.hostpubkeys, w->p.n) || !jhex(j, "wallet_id", w->wid, 32) ||
        !jhex(j, "secshare", w->secshare, 32) || !jhex(j, "thresh_pubkey", w->thresh, 33) ||
        !jkeys(json_object_get(j, "pubshares"), w->pubshares, w->p.n) ||
        (rec && (!json_is_string(rec) || rl % 2 || rl / 2 > CG_DKG_RECOVERY_MAX ||
                 !net_hex_decode(w->rec, rl / 2, json_string_value(rec), rl)))) {
        st = fail(d, CDEV_ERR_FORMAT, "a field of the state file is missing or malformed");
        goto out;
    }
    if (cg_dkg_params_validate(&w->p, NULL) != RT_OK ||
        cg_dkg_params_hash(w->hash, &w->p, NULL) != RT_OK || memcmp(w->hash, w->wid, 32)) {
        st = fail(d, CDEV_ERR_FORMAT, "the state's wallet id is not the hash of its params");
        goto out;
    }
    if (memcmp(w->p.hostpubkeys[json_integer_value(idx)], d->hostpk, 33)) {
        st = fail(d, CDEV_ERR_FORMAT, "the state file is of another device's key");
        goto out;
    }
    st = adopt(d, &w->p, w->wid, w->secshare, w->thresh, (const uint8_t(*)[33])w->pubshares, w->rec,
               rec ? rl / 2 : 0);
out:
    /* jansson frees its strings without wiping them: wipe the secret
     * share's text in place first (it is ours to clobber, about to be freed). */
    if (j) {
        json_t *s = json_object_get(j, "secshare");
        if (json_is_string(s)) cx_wipe((char *)json_string_value(s), json_string_length(s));
        json_decref(j);
    }
    cx_wipe(w, sizeof *w);
    free(w);
    return st;
}
