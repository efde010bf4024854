/*
 * fuzz_cmd.c — the guest's command codec (cg_cmd.h): every command the HTTP
 * layer hands to a wallet actor is decoded by cg_cmd_decode inside the guest,
 * so it is untrusted input there. Beyond memory safety the target checks the
 * codec's contract: whatever decodes re-encodes to the very same bytes
 * (one encoding per command: nothing the guest accepts is ambiguous), and the
 * same for replies and the configuration record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_cmd.h"
#include "fuzz.h"

static uint8_t out[CG_CMD_MAX_LEN + CG_REPLY_MAX_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cg_cmd c;
    size_t len = 0;
    if (cg_cmd_decode(&c, data, size) == RT_OK) {
        FUZZ_CHECK(c.kind == CG_CMD_DKG_ROUND1 || c.kind == CG_CMD_DKG_ROUND2 ||
                   c.kind == CG_CMD_SIGN_ROUND1 || c.kind == CG_CMD_SIGN_ROUND2 ||
                   c.kind == CG_CMD_GET_WALLET || c.kind == CG_CMD_GET_RECOVERY ||
                   c.kind == CG_CMD_RESTORE || c.kind == CG_CMD_RETIRE || c.kind == CG_CMD_FAULT);
        if (c.kind == CG_CMD_RESTORE)
            FUZZ_CHECK(c.u.restore.recovery_len >= 1 &&
                       c.u.restore.recovery_len <= CG_MAX_RECOVERY_LEN);
        FUZZ_CHECK(cg_cmd_kind_name(c.kind)[0] != '?');
        if (c.kind == CG_CMD_DKG_ROUND1)
            FUZZ_CHECK(c.u.dkg1.t >= 1 && c.u.dkg1.t <= c.u.dkg1.n &&
                       c.u.dkg1.n <= CG_MAX_PARTICIPANTS);
        if (c.kind == CG_CMD_SIGN_ROUND1) {
            FUZZ_CHECK(c.u.sign1.n_signers >= 1 && c.u.sign1.n_signers <= CG_MAX_PARTICIPANTS);
            FUZZ_CHECK(c.u.sign1.n_tweaks <= CG_MAX_TWEAKS);
            FUZZ_CHECK(c.u.sign1.msg_len <= CG_MAX_MSG_LEN);
        }
        FUZZ_CHECK(cg_cmd_encode(&c, out, sizeof out, &len) == RT_OK);
        FUZZ_CHECK(len == size && !memcmp(out, data, size));
    }
    cg_reply r;
    if (cg_reply_decode(&r, data, size) == RT_OK) {
        FUZZ_CHECK(cg_reply_encode(&r, out, sizeof out, &len) == RT_OK);
        FUZZ_CHECK(len == size && !memcmp(out, data, size));
    }
    cg_config cf;
    if (cg_config_decode(&cf, data, size) == RT_OK) {
        uint8_t b[CG_CONFIG_LEN];
        cg_config_encode(&cf, b);
        FUZZ_CHECK(size == CG_CONFIG_LEN && !memcmp(b, data, size));
    }
    return 0;
}

static int put(const char *dir, const char *name, const cg_cmd *c, int *n)
{
    size_t len;
    if (cg_cmd_encode(c, out, sizeof out, &len) != RT_OK) return 0;
    *n += fuzz_seed(dir, name, out, len);
    return 1;
}

static int put_reply(const char *dir, const char *name, const cg_reply *r, int *n)
{
    size_t len;
    if (cg_reply_encode(r, out, sizeof out, &len) != RT_OK) return 0;
    *n += fuzz_seed(dir, name, out, len);
    return 1;
}

int fuzz_write_seeds(const char *dir)
{
    static uint8_t pk[CG_MAX_PARTICIPANTS * 33], blob[4096], sid[32], pn[66], tw[32], ps[32];
    for (size_t i = 0; i < sizeof pk; i++)
        pk[i] = (uint8_t)(i % 33 ? i : 2 + (i / 33) % 2);
    memset(blob, 0xab, sizeof blob);
    memset(sid, 0x11, 32);
    memset(pn, 0x02, 66);
    memset(tw, 0x33, 32);
    memset(ps, 0x44, 32);
    int n = 0;
    cg_cmd c;
    memset(&c, 0, sizeof c);
    c.sender = pk;
    c.kind = CG_CMD_DKG_ROUND1;
    c.u.dkg1.n = 3;
    c.u.dkg1.t = 2;
    c.u.dkg1.hostpubkeys = pk;
    c.u.dkg1.pmsg1 = blob;
    c.u.dkg1.pmsg1_len = 33 * 2 + 32 * 3 + 97;
    if (!put(dir, "dkg1_2of3", &c, &n)) return -1;
    c.u.dkg1.n = 32;
    c.u.dkg1.t = 32;
    c.u.dkg1.pmsg1_len = 2145;
    put(dir, "dkg1_32of32", &c, &n);
    memset(&c.u, 0, sizeof c.u);
    c.kind = CG_CMD_DKG_ROUND2;
    c.u.dkg2.pmsg2 = blob;
    c.u.dkg2.pmsg2_len = 64;
    put(dir, "dkg2", &c, &n);
    memset(&c.u, 0, sizeof c.u);
    c.kind = CG_CMD_SIGN_ROUND1;
    c.u.sign1.session_id = sid;
    c.u.sign1.n_signers = 2;
    c.u.sign1.signer_ids[0] = 0;
    c.u.sign1.signer_ids[1] = 2;
    c.u.sign1.msg = blob;
    c.u.sign1.msg_len = 32;
    c.u.sign1.pubnonce = pn;
    put(dir, "sign1_plain", &c, &n);
    c.u.sign1.n_tweaks = 2;
    c.u.sign1.tweaks[0] = (cg_tweak){tw, 0};
    c.u.sign1.tweaks[1] = (cg_tweak){tw, 1};
    c.u.sign1.msg_len = 0;
    put(dir, "sign1_tweaks", &c, &n);
    memset(&c.u, 0, sizeof c.u);
    c.kind = CG_CMD_SIGN_ROUND2;
    c.u.sign2.session_id = sid;
    c.u.sign2.psig = ps;
    put(dir, "sign2", &c, &n);
    memset(&c.u, 0, sizeof c.u);
    c.kind = CG_CMD_GET_WALLET;
    put(dir, "get_wallet", &c, &n);
    c.kind = CG_CMD_GET_RECOVERY;
    put(dir, "get_recovery", &c, &n);
    c.kind = CG_CMD_RETIRE;
    put(dir, "retire", &c, &n);
    c.kind = CG_CMD_RESTORE;
    c.u.restore.recovery = blob;
    c.u.restore.recovery_len = 4 + 33 * 2 + 162 * 3;
    put(dir, "restore", &c, &n);
    memset(&c.u, 0, sizeof c.u);
    c.kind = CG_CMD_FAULT;
    for (uint32_t k = 1; k <= CG_FAULT_KIND_MAX_; k++) {
        char name[32];
        c.u.fault.kind = k;
        snprintf(name, sizeof name, "fault_%u", k);
        put(dir, name, &c, &n);
    }
    cg_reply r;
    memset(&r, 0, sizeof r);
    r.kind = CG_CMD_DKG_ROUND1;
    r.u.dkg1.cmsg1 = blob;
    r.u.dkg1.cmsg1_len = 162 * 3 + 33;
    put_reply(dir, "reply_dkg1", &r, &n);
    memset(&r.u, 0, sizeof r.u);
    r.kind = CG_CMD_DKG_ROUND2;
    r.u.dkg2.thresh_pubkey = pk;
    r.u.dkg2.cmsg2 = blob;
    r.u.dkg2.cmsg2_len = 192;
    put_reply(dir, "reply_dkg2", &r, &n);
    memset(&r.u, 0, sizeof r.u);
    r.kind = CG_CMD_SIGN_ROUND1;
    r.u.sign1.aggnonce = pn;
    put_reply(dir, "reply_sign1", &r, &n);
    r.kind = CG_CMD_SIGN_ROUND2;
    r.u.sign2.sig = blob;
    put_reply(dir, "reply_sign2", &r, &n);
    memset(&r.u, 0, sizeof r.u);
    r.kind = CG_CMD_GET_WALLET;
    r.u.wallet.thresh_pubkey = pk;
    r.u.wallet.t = 2;
    r.u.wallet.n = 3;
    r.u.wallet.hostpubkeys = pk;
    r.u.wallet.pubshares = pk + 33;
    put_reply(dir, "reply_wallet", &r, &n);
    memset(&r.u, 0, sizeof r.u);
    r.kind = CG_CMD_GET_RECOVERY;
    r.u.recovery.data = blob;
    r.u.recovery.len = 4 + 33 * 2 + 162 * 3;
    put_reply(dir, "reply_recovery", &r, &n);
    memset(&r.u, 0, sizeof r.u);
    r.kind = CG_CMD_RESTORE;
    r.u.restore.thresh_pubkey = pk;
    put_reply(dir, "reply_restore", &r, &n);
    memset(&r.u, 0, sizeof r.u);
    r.kind = CG_CMD_RETIRE;
    put_reply(dir, "reply_retire", &r, &n);
    cg_config cf = {5000, CG_CONFIG_FAULT_INJECTION};
    uint8_t b[CG_CONFIG_LEN];
    cg_config_encode(&cf, b);
    n += fuzz_seed(dir, "config", b, sizeof b);
    return n;
}
