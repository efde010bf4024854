/*
 * cg_cmd.c — command/reply codec (layout documented in cg_cmd.h).
 *
 * Decoding is a cursor that only ever advances after checking the bytes are
 * there, so a truncated or lying length can at worst fail the decode.
 */
#include "cg_cmd.h"
#include "cg_mem.h"

/* ----- reading ----------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    int bad;
} rd;

static const uint8_t *rd_take(rd *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        return 0;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint32_t rd_u8(rd *r)
{
    const uint8_t *p = rd_take(r, 1);
    return p ? p[0] : 0;
}

static uint32_t rd_u32(rd *r)
{
    const uint8_t *p = rd_take(r, 4);
    if (!p) return 0;
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ----- writing ----------------------------------------------------------- */

/* Writes past cap are counted but not stored, so one pass yields the size
 * needed even when the buffer is too small. */
typedef struct wr {
    uint8_t *p;
    size_t cap, len;
} wr;

static void wr_put(wr *w, const void *src, size_t n)
{
    if (w->len <= w->cap && n <= w->cap - w->len && n) cg_memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void wr_u8(wr *w, uint32_t v)
{
    uint8_t b = (uint8_t)v;
    wr_put(w, &b, 1);
}

static void wr_u32(wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr_put(w, b, 4);
}

static rt_status wr_done(const wr *w, size_t *len)
{
    *len = w->len;
    return w->len <= w->cap ? RT_OK : RT_OUT_OF_RANGE;
}

/* ----- shared checks ----------------------------------------------------- */

static int signers_ok(uint32_t k, const uint8_t *ids)
{
    if (k < 1 || k > CG_MAX_PARTICIPANTS) return 0;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (ids[i] >= CG_MAX_PARTICIPANTS || (seen >> ids[i]) & 1) return 0;
        seen |= (uint64_t)1 << ids[i];
    }
    return 1;
}

static int params_ok(uint32_t n, uint32_t t)
{
    return n >= 1 && n <= CG_MAX_PARTICIPANTS && t >= 1 && t <= n;
}

/* ----- commands ---------------------------------------------------------- */

rt_status cg_cmd_decode(cg_cmd *out, const uint8_t *buf, size_t len)
{
    cg_memset(out, 0, sizeof *out);
    if (!buf) return RT_INVALID_ARGUMENT;
    rd r = {buf, len, 0};
    uint32_t version = rd_u8(&r);
    uint32_t kind = rd_u8(&r);
    out->sender = rd_take(&r, CG_HOSTPUBKEY_LEN);
    if (r.bad) return RT_INVALID_ARGUMENT;
    if (version != CG_CMD_VERSION) return RT_UNIMPLEMENTED;
    out->kind = (int)kind;
    switch (kind) {
    case CG_CMD_DKG_ROUND1: {
        uint32_t n = rd_u8(&r);
        if (!params_ok(n, n)) /* t is checked once read */
            return RT_INVALID_ARGUMENT;
        out->u.dkg1.n = n;
        out->u.dkg1.hostpubkeys = rd_take(&r, (size_t)n * CG_HOSTPUBKEY_LEN);
        out->u.dkg1.t = rd_u8(&r);
        if (!params_ok(n, out->u.dkg1.t)) return RT_INVALID_ARGUMENT;
        uint32_t l = rd_u32(&r);
        if (r.bad || l == 0 || l > CG_MAX_PMSG_LEN) return RT_INVALID_ARGUMENT;
        out->u.dkg1.pmsg1_len = l;
        out->u.dkg1.pmsg1 = rd_take(&r, l);
        break;
    }
    case CG_CMD_DKG_ROUND2: {
        uint32_t l = rd_u32(&r);
        if (r.bad || l == 0 || l > CG_MAX_PMSG_LEN) return RT_INVALID_ARGUMENT;
        out->u.dkg2.pmsg2_len = l;
        out->u.dkg2.pmsg2 = rd_take(&r, l);
        break;
    }
    case CG_CMD_SIGN_ROUND1: {
        out->u.sign1.session_id = rd_take(&r, CG_SESSION_ID_LEN);
        uint32_t k = rd_u8(&r);
        if (r.bad || k < 1 || k > CG_MAX_PARTICIPANTS) return RT_INVALID_ARGUMENT;
        const uint8_t *ids = rd_take(&r, k);
        if (!ids || !signers_ok(k, ids)) return RT_INVALID_ARGUMENT;
        out->u.sign1.n_signers = k;
        cg_memcpy(out->u.sign1.signer_ids, ids, k);
        uint32_t l = rd_u32(&r);
        if (r.bad || l > CG_MAX_MSG_LEN) return RT_INVALID_ARGUMENT;
        out->u.sign1.msg_len = l;
        out->u.sign1.msg = rd_take(&r, l);
        uint32_t m = rd_u8(&r);
        if (r.bad || m > CG_MAX_TWEAKS) return RT_INVALID_ARGUMENT;
        out->u.sign1.n_tweaks = m;
        for (uint32_t i = 0; i < m; i++) {
            out->u.sign1.tweaks[i].tweak = rd_take(&r, CG_TWEAK_LEN);
            uint32_t x = rd_u8(&r);
            if (r.bad || x > 1) return RT_INVALID_ARGUMENT;
            out->u.sign1.tweaks[i].xonly = (int)x;
        }
        out->u.sign1.pubnonce = rd_take(&r, CG_PUBNONCE_LEN);
        break;
    }
    case CG_CMD_SIGN_ROUND2:
        out->u.sign2.session_id = rd_take(&r, CG_SESSION_ID_LEN);
        out->u.sign2.psig = rd_take(&r, CG_PSIG_LEN);
        break;
    case CG_CMD_GET_WALLET:
    case CG_CMD_GET_RECOVERY:
    case CG_CMD_RETIRE:
        break;
    case CG_CMD_RESTORE: {
        uint32_t l = rd_u32(&r);
        if (r.bad || l == 0 || l > CG_MAX_RECOVERY_LEN) return RT_INVALID_ARGUMENT;
        out->u.restore.recovery_len = l;
        out->u.restore.recovery = rd_take(&r, l);
        break;
    }
    case CG_CMD_FAULT: {
        uint32_t f = rd_u8(&r);
        if (r.bad || f < 1 || f > CG_FAULT_KIND_MAX_) return RT_INVALID_ARGUMENT;
        out->u.fault.kind = f;
        break;
    }
    default:
        return RT_UNIMPLEMENTED;
    }
    if (r.bad || r.left != 0) return RT_INVALID_ARGUMENT;
    return RT_OK;
}

rt_status cg_cmd_encode(const cg_cmd *c, uint8_t *out, size_t cap, size_t *len)
{
    wr w = {out, out ? cap : 0, 0};
    *len = 0;
    if (!c->sender) return RT_INVALID_ARGUMENT;
    wr_u8(&w, CG_CMD_VERSION);
    wr_u8(&w, (uint32_t)c->kind);
    wr_put(&w, c->sender, CG_HOSTPUBKEY_LEN);
    switch (c->kind) {
    case CG_CMD_DKG_ROUND1:
        if (!params_ok(c->u.dkg1.n, c->u.dkg1.t) || !c->u.dkg1.hostpubkeys || !c->u.dkg1.pmsg1 ||
            c->u.dkg1.pmsg1_len == 0 || c->u.dkg1.pmsg1_len > CG_MAX_PMSG_LEN)
            return RT_INVALID_ARGUMENT;
        wr_u8(&w, c->u.dkg1.n);
        wr_put(&w, c->u.dkg1.hostpubkeys, (size_t)c->u.dkg1.n * CG_HOSTPUBKEY_LEN);
        wr_u8(&w, c->u.dkg1.t);
        wr_u32(&w, c->u.dkg1.pmsg1_len);
        wr_put(&w, c->u.dkg1.pmsg1, c->u.dkg1.pmsg1_len);
        break;
    case CG_CMD_DKG_ROUND2:
        if (!c->u.dkg2.pmsg2 || c->u.dkg2.pmsg2_len == 0 || c->u.dkg2.pmsg2_len > CG_MAX_PMSG_LEN)
            return RT_INVALID_ARGUMENT;
        wr_u32(&w, c->u.dkg2.pmsg2_len);
        wr_put(&w, c->u.dkg2.pmsg2, c->u.dkg2.pmsg2_len);
        break;
    case CG_CMD_SIGN_ROUND1: {
        const typeof(c->u.sign1) *s = &c->u.sign1;
        if (!s->session_id || !s->pubnonce || !signers_ok(s->n_signers, s->signer_ids) ||
            s->msg_len > CG_MAX_MSG_LEN || (s->msg_len && !s->msg) || s->n_tweaks > CG_MAX_TWEAKS)
            return RT_INVALID_ARGUMENT;
        for (uint32_t i = 0; i < s->n_tweaks; i++)
            if (!s->tweaks[i].tweak || (s->tweaks[i].xonly != 0 && s->tweaks[i].xonly != 1))
                return RT_INVALID_ARGUMENT;
        wr_put(&w, s->session_id, CG_SESSION_ID_LEN);
        wr_u8(&w, s->n_signers);
        wr_put(&w, s->signer_ids, s->n_signers);
        wr_u32(&w, s->msg_len);
        wr_put(&w, s->msg, s->msg_len);
        wr_u8(&w, s->n_tweaks);
        for (uint32_t i = 0; i < s->n_tweaks; i++) {
            wr_put(&w, s->tweaks[i].tweak, CG_TWEAK_LEN);
            wr_u8(&w, (uint32_t)s->tweaks[i].xonly);
        }
        wr_put(&w, s->pubnonce, CG_PUBNONCE_LEN);
        break;
    }
    case CG_CMD_SIGN_ROUND2:
        if (!c->u.sign2.session_id || !c->u.sign2.psig) return RT_INVALID_ARGUMENT;
        wr_put(&w, c->u.sign2.session_id, CG_SESSION_ID_LEN);
        wr_put(&w, c->u.sign2.psig, CG_PSIG_LEN);
        break;
    case CG_CMD_GET_WALLET:
    case CG_CMD_GET_RECOVERY:
    case CG_CMD_RETIRE:
        break;
    case CG_CMD_RESTORE:
        if (!c->u.restore.recovery || c->u.restore.recovery_len == 0 ||
            c->u.restore.recovery_len > CG_MAX_RECOVERY_LEN)
            return RT_INVALID_ARGUMENT;
        wr_u32(&w, c->u.restore.recovery_len);
        wr_put(&w, c->u.restore.recovery, c->u.restore.recovery_len);
        break;
    case CG_CMD_FAULT:
        if (c->u.fault.kind < 1 || c->u.fault.kind > CG_FAULT_KIND_MAX_) return RT_INVALID_ARGUMENT;
        wr_u8(&w, c->u.fault.kind);
        break;
    default:
        return RT_INVALID_ARGUMENT;
    }
    return wr_done(&w, len);
}

/* ----- replies ----------------------------------------------------------- */

rt_status cg_reply_decode(cg_reply *out, const uint8_t *buf, size_t len)
{
    cg_memset(out, 0, sizeof *out);
    if (!buf) return RT_INVALID_ARGUMENT;
    rd r = {buf, len, 0};
    uint32_t version = rd_u8(&r);
    uint32_t kind = rd_u8(&r);
    if (r.bad) return RT_INVALID_ARGUMENT;
    if (version != CG_CMD_VERSION) return RT_UNIMPLEMENTED;
    out->kind = (int)kind;
    switch (kind) {
    case CG_CMD_DKG_ROUND1: {
        uint32_t l = rd_u32(&r);
        if (r.bad || l == 0 || l > CG_MAX_CMSG_LEN) return RT_INVALID_ARGUMENT;
        out->u.dkg1.cmsg1_len = l;
        out->u.dkg1.cmsg1 = rd_take(&r, l);
        break;
    }
    case CG_CMD_DKG_ROUND2: {
        out->u.dkg2.thresh_pubkey = rd_take(&r, CG_HOSTPUBKEY_LEN);
        uint32_t l = rd_u32(&r);
        if (r.bad || l == 0 || l > CG_MAX_CMSG_LEN) return RT_INVALID_ARGUMENT;
        out->u.dkg2.cmsg2_len = l;
        out->u.dkg2.cmsg2 = rd_take(&r, l);
        break;
    }
    case CG_CMD_SIGN_ROUND1:
        out->u.sign1.aggnonce = rd_take(&r, CG_PUBNONCE_LEN);
        break;
    case CG_CMD_SIGN_ROUND2:
        out->u.sign2.sig = rd_take(&r, CG_SIG_LEN);
        break;
    case CG_CMD_GET_WALLET: {
        out->u.wallet.thresh_pubkey = rd_take(&r, CG_HOSTPUBKEY_LEN);
        uint32_t t = rd_u8(&r), n = rd_u8(&r);
        if (r.bad || !params_ok(n, t)) return RT_INVALID_ARGUMENT;
        out->u.wallet.t = t;
        out->u.wallet.n = n;
        out->u.wallet.hostpubkeys = rd_take(&r, (size_t)n * CG_HOSTPUBKEY_LEN);
        out->u.wallet.pubshares = rd_take(&r, (size_t)n * CG_HOSTPUBKEY_LEN);
        break;
    }
    case CG_CMD_GET_RECOVERY: {
        uint32_t l = rd_u32(&r);
        if (r.bad || l == 0 || l > CG_MAX_RECOVERY_LEN) return RT_INVALID_ARGUMENT;
        out->u.recovery.len = l;
        out->u.recovery.data = rd_take(&r, l);
        break;
    }
    case CG_CMD_RESTORE:
        out->u.restore.thresh_pubkey = rd_take(&r, CG_HOSTPUBKEY_LEN);
        break;
    case CG_CMD_RETIRE:
        break;
    default:
        return RT_UNIMPLEMENTED;
    }
    if (r.bad || r.left != 0) return RT_INVALID_ARGUMENT;
    return RT_OK;
}

rt_status cg_reply_encode(const cg_reply *x, uint8_t *out, size_t cap, size_t *len)
{
    wr w = {out, out ? cap : 0, 0};
    *len = 0;
    wr_u8(&w, CG_CMD_VERSION);
    wr_u8(&w, (uint32_t)x->kind);
    switch (x->kind) {
    case CG_CMD_DKG_ROUND1:
        if (!x->u.dkg1.cmsg1 || x->u.dkg1.cmsg1_len == 0 || x->u.dkg1.cmsg1_len > CG_MAX_CMSG_LEN)
            return RT_INVALID_ARGUMENT;
        wr_u32(&w, x->u.dkg1.cmsg1_len);
        wr_put(&w, x->u.dkg1.cmsg1, x->u.dkg1.cmsg1_len);
        break;
    case CG_CMD_DKG_ROUND2:
        if (!x->u.dkg2.thresh_pubkey || !x->u.dkg2.cmsg2 || x->u.dkg2.cmsg2_len == 0 ||
            x->u.dkg2.cmsg2_len > CG_MAX_CMSG_LEN)
            return RT_INVALID_ARGUMENT;
        wr_put(&w, x->u.dkg2.thresh_pubkey, CG_HOSTPUBKEY_LEN);
        wr_u32(&w, x->u.dkg2.cmsg2_len);
        wr_put(&w, x->u.dkg2.cmsg2, x->u.dkg2.cmsg2_len);
        break;
    case CG_CMD_SIGN_ROUND1:
        if (!x->u.sign1.aggnonce) return RT_INVALID_ARGUMENT;
        wr_put(&w, x->u.sign1.aggnonce, CG_PUBNONCE_LEN);
        break;
    case CG_CMD_SIGN_ROUND2:
        if (!x->u.sign2.sig) return RT_INVALID_ARGUMENT;
        wr_put(&w, x->u.sign2.sig, CG_SIG_LEN);
        break;
    case CG_CMD_GET_WALLET:
        if (!x->u.wallet.thresh_pubkey || !x->u.wallet.hostpubkeys || !x->u.wallet.pubshares ||
            !params_ok(x->u.wallet.n, x->u.wallet.t))
            return RT_INVALID_ARGUMENT;
        wr_put(&w, x->u.wallet.thresh_pubkey, CG_HOSTPUBKEY_LEN);
        wr_u8(&w, x->u.wallet.t);
        wr_u8(&w, x->u.wallet.n);
        wr_put(&w, x->u.wallet.hostpubkeys, (size_t)x->u.wallet.n * CG_HOSTPUBKEY_LEN);
        wr_put(&w, x->u.wallet.pubshares, (size_t)x->u.wallet.n * CG_HOSTPUBKEY_LEN);
        break;
    case CG_CMD_GET_RECOVERY:
        if (!x->u.recovery.data || x->u.recovery.len == 0 ||
            x->u.recovery.len > CG_MAX_RECOVERY_LEN)
            return RT_INVALID_ARGUMENT;
        wr_u32(&w, x->u.recovery.len);
        wr_put(&w, x->u.recovery.data, x->u.recovery.len);
        break;
    case CG_CMD_RESTORE:
        if (!x->u.restore.thresh_pubkey) return RT_INVALID_ARGUMENT;
        wr_put(&w, x->u.restore.thresh_pubkey, CG_HOSTPUBKEY_LEN);
        break;
    case CG_CMD_RETIRE:
        break;
    default:
        return RT_INVALID_ARGUMENT;
    }
    return wr_done(&w, len);
}

/* ----- configuration ----------------------------------------------------- */

rt_status cg_config_decode(cg_config *out, const uint8_t *buf, size_t len)
{
    cg_memset(out, 0, sizeof *out);
    if (!buf || len != CG_CONFIG_LEN) return RT_INVALID_ARGUMENT;
    rd r = {buf, len, 0};
    if (rd_u8(&r) != CG_CMD_VERSION) return RT_UNIMPLEMENTED;
    out->rendezvous_ms = rd_u32(&r);
    out->flags = rd_u8(&r);
    if (out->flags & ~CG_CONFIG_FAULT_INJECTION) return RT_INVALID_ARGUMENT;
    return RT_OK;
}

void cg_config_encode(const cg_config *c, uint8_t out[CG_CONFIG_LEN])
{
    wr w = {out, CG_CONFIG_LEN, 0};
    wr_u8(&w, CG_CMD_VERSION);
    wr_u32(&w, c->rendezvous_ms);
    wr_u8(&w, c->flags);
}

const char *cg_cmd_kind_name(int kind)
{
    switch (kind) {
    case CG_CMD_DKG_ROUND1:
        return "DKG_ROUND1";
    case CG_CMD_DKG_ROUND2:
        return "DKG_ROUND2";
    case CG_CMD_SIGN_ROUND1:
        return "SIGN_ROUND1";
    case CG_CMD_SIGN_ROUND2:
        return "SIGN_ROUND2";
    case CG_CMD_GET_WALLET:
        return "GET_WALLET";
    case CG_CMD_GET_RECOVERY:
        return "GET_RECOVERY";
    case CG_CMD_RESTORE:
        return "RESTORE";
    case CG_CMD_RETIRE:
        return "RETIRE";
    case CG_CMD_FAULT:
        return "FAULT";
    default:
        return "?";
    }
}
