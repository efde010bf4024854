/*
 * test_cmd.c — the command/reply codec shared by the HTTP layer and the
 * cosigner guest: round trips, and refusal of every malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "cx.h"

static uint8_t pk[CG_MAX_PARTICIPANTS][33];
static uint8_t blob[CG_MAX_MSG_LEN + 1];

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static uint8_t *encode(const cg_cmd *c, size_t *len)
{
    size_t need;
    assert_int_equal(cg_cmd_encode(c, NULL, 0, &need), RT_OUT_OF_RANGE);
    uint8_t *buf = malloc(need);
    assert_non_null(buf);
    assert_int_equal(cg_cmd_encode(c, buf, need, len), RT_OK);
    assert_int_equal(*len, need);
    return buf;
}

/* Every strict prefix and every one-byte extension must be refused. */
static void check_truncations(const uint8_t *buf, size_t len)
{
    cg_cmd d;
    for (size_t l = 0; l < len; l++)
        assert_int_not_equal(cg_cmd_decode(&d, buf, l), RT_OK);
    uint8_t *ext = malloc(len + 1);
    memcpy(ext, buf, len);
    ext[len] = 0;
    assert_int_equal(cg_cmd_decode(&d, ext, len + 1), RT_INVALID_ARGUMENT);
    free(ext);
}

static void test_dkg1_roundtrip(void **state)
{
    (void)state;
    cg_cmd c = {.kind = CG_CMD_DKG_ROUND1, .sender = pk[1]};
    c.u.dkg1.n = 3;
    c.u.dkg1.t = 2;
    c.u.dkg1.hostpubkeys = pk[0];
    c.u.dkg1.pmsg1 = blob;
    c.u.dkg1.pmsg1_len = 259;
    size_t len;
    uint8_t *buf = encode(&c, &len);
    cg_cmd d;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_int_equal(d.kind, CG_CMD_DKG_ROUND1);
    assert_memory_equal(d.sender, pk[1], 33);
    assert_int_equal(d.u.dkg1.n, 3);
    assert_int_equal(d.u.dkg1.t, 2);
    assert_memory_equal(d.u.dkg1.hostpubkeys, pk[0], 3 * 33);
    assert_int_equal(d.u.dkg1.pmsg1_len, 259);
    assert_memory_equal(d.u.dkg1.pmsg1, blob, 259);
    check_truncations(buf, len);

    /* t > n, t = 0 and n = 0 are refused by both sides. */
    buf[2 + 33 + 1 + 3 * 33] = 4;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    buf[2 + 33 + 1 + 3 * 33] = 0;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    c.u.dkg1.t = 4;
    assert_int_equal(cg_cmd_encode(&c, buf, len, &len), RT_INVALID_ARGUMENT);
    c.u.dkg1.t = 2;
    c.u.dkg1.n = 33;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
    c.u.dkg1.n = 3;
    c.u.dkg1.pmsg1_len = CG_MAX_PMSG_LEN + 1;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
    free(buf);
}

static void test_dkg2_roundtrip(void **state)
{
    (void)state;
    cg_cmd c = {.kind = CG_CMD_DKG_ROUND2, .sender = pk[2]};
    c.u.dkg2.pmsg2 = blob;
    c.u.dkg2.pmsg2_len = 64;
    size_t len;
    uint8_t *buf = encode(&c, &len);
    cg_cmd d;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_int_equal(d.kind, CG_CMD_DKG_ROUND2);
    assert_int_equal(d.u.dkg2.pmsg2_len, 64);
    assert_memory_equal(d.u.dkg2.pmsg2, blob, 64);
    check_truncations(buf, len);
    /* A length field pointing past the end (the classic overread). */
    buf[35] = 0x7f;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    free(buf);
}

static void test_sign1_roundtrip(void **state)
{
    (void)state;
    uint8_t sid[32], nonce[66], tw[2][32];
    fill(sid, 32, 1);
    fill(nonce, 66, 2);
    fill(tw[0], 32, 3);
    fill(tw[1], 32, 4);
    cg_cmd c = {.kind = CG_CMD_SIGN_ROUND1, .sender = pk[0]};
    c.u.sign1.session_id = sid;
    c.u.sign1.n_signers = 3;
    c.u.sign1.signer_ids[0] = 2;
    c.u.sign1.signer_ids[1] = 0;
    c.u.sign1.signer_ids[2] = 31;
    c.u.sign1.msg = blob;
    c.u.sign1.msg_len = 100;
    c.u.sign1.n_tweaks = 2;
    c.u.sign1.tweaks[0] = (cg_tweak){tw[0], 0};
    c.u.sign1.tweaks[1] = (cg_tweak){tw[1], 1};
    c.u.sign1.pubnonce = nonce;
    size_t len;
    uint8_t *buf = encode(&c, &len);
    cg_cmd d;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_int_equal(d.kind, CG_CMD_SIGN_ROUND1);
    assert_memory_equal(d.u.sign1.session_id, sid, 32);
    assert_int_equal(d.u.sign1.n_signers, 3);
    assert_memory_equal(d.u.sign1.signer_ids, c.u.sign1.signer_ids, 3);
    assert_int_equal(d.u.sign1.msg_len, 100);
    assert_memory_equal(d.u.sign1.msg, blob, 100);
    assert_int_equal(d.u.sign1.n_tweaks, 2);
    assert_memory_equal(d.u.sign1.tweaks[1].tweak, tw[1], 32);
    assert_int_equal(d.u.sign1.tweaks[0].xonly, 0);
    assert_int_equal(d.u.sign1.tweaks[1].xonly, 1);
    assert_memory_equal(d.u.sign1.pubnonce, nonce, 66);
    check_truncations(buf, len);

    /* Duplicate signer id, id out of range, bad xonly flag. */
    size_t ids = 2 + 33 + 32 + 1;
    buf[ids + 1] = 2;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    buf[ids + 1] = 32;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    buf[ids + 1] = 0;
    size_t flag = ids + 3 + 4 + 100 + 1 + 32;
    assert_int_equal(buf[flag], 0);
    buf[flag] = 2;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    buf[flag] = 0;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    free(buf);

    /* Empty message and no tweaks are fine; the largest message too. */
    c.u.sign1.msg_len = 0;
    c.u.sign1.n_tweaks = 0;
    buf = encode(&c, &len);
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_int_equal(d.u.sign1.msg_len, 0);
    free(buf);
    c.u.sign1.msg_len = CG_MAX_MSG_LEN;
    c.u.sign1.n_tweaks = CG_MAX_TWEAKS;
    for (int i = 0; i < CG_MAX_TWEAKS; i++)
        c.u.sign1.tweaks[i] = (cg_tweak){tw[i & 1], i & 1};
    buf = encode(&c, &len);
    assert_true(len <= CG_CMD_MAX_LEN);
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    free(buf);
    c.u.sign1.msg_len = CG_MAX_MSG_LEN + 1;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
    c.u.sign1.msg_len = 1;
    c.u.sign1.n_tweaks = CG_MAX_TWEAKS + 1;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
    c.u.sign1.n_tweaks = 0;
    c.u.sign1.n_signers = 0;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
}

static void test_sign2_wallet_fault(void **state)
{
    (void)state;
    uint8_t sid[32], psig[32];
    fill(sid, 32, 9);
    fill(psig, 32, 10);
    cg_cmd c = {.kind = CG_CMD_SIGN_ROUND2, .sender = pk[3]};
    c.u.sign2.session_id = sid;
    c.u.sign2.psig = psig;
    size_t len;
    uint8_t *buf = encode(&c, &len);
    assert_int_equal(len, 2 + 33 + 64);
    cg_cmd d;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_memory_equal(d.u.sign2.session_id, sid, 32);
    assert_memory_equal(d.u.sign2.psig, psig, 32);
    check_truncations(buf, len);
    free(buf);

    c = (cg_cmd){.kind = CG_CMD_GET_WALLET, .sender = pk[0]};
    buf = encode(&c, &len);
    assert_int_equal(len, 35);
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_int_equal(d.kind, CG_CMD_GET_WALLET);
    check_truncations(buf, len);
    free(buf);

    c = (cg_cmd){.kind = CG_CMD_FAULT, .sender = pk[0]};
    c.u.fault.kind = CG_FAULT_TRAP;
    buf = encode(&c, &len);
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
    assert_int_equal(d.u.fault.kind, CG_FAULT_TRAP);
    buf[len - 1] = 0;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    buf[len - 1] = CG_FAULT_KIND_MAX_ + 1;
    assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
    free(buf);

    /* Recovery, restore, retire: round trips and the recovery bound. */
    static uint8_t recd[CG_MAX_RECOVERY_LEN + 1];
    for (int kind = CG_CMD_GET_RECOVERY; kind <= CG_CMD_RETIRE; kind++) {
        c = (cg_cmd){.kind = kind, .sender = pk[0]};
        if (kind == CG_CMD_RESTORE) {
            c.u.restore.recovery = recd;
            c.u.restore.recovery_len = CG_MAX_RECOVERY_LEN;
        }
        assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_OUT_OF_RANGE);
        buf = malloc(len);
        assert_int_equal(cg_cmd_encode(&c, buf, len, &len), RT_OK);
        assert_int_equal(cg_cmd_decode(&d, buf, len), RT_OK);
        assert_int_equal(d.kind, kind);
        if (kind == CG_CMD_RESTORE) {
            assert_int_equal(d.u.restore.recovery_len, CG_MAX_RECOVERY_LEN);
            buf[35] = 0xff; /* length above the bound */
            assert_int_equal(cg_cmd_decode(&d, buf, len), RT_INVALID_ARGUMENT);
        }
        free(buf);
    }
    c = (cg_cmd){.kind = CG_CMD_RESTORE, .sender = pk[0]};
    c.u.restore.recovery = recd;
    c.u.restore.recovery_len = CG_MAX_RECOVERY_LEN + 1;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
    c.u.restore.recovery_len = 0;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);

    /* Unknown version and kind. */
    uint8_t raw[35] = {CG_CMD_VERSION, 77};
    assert_int_equal(cg_cmd_decode(&d, raw, 35), RT_UNIMPLEMENTED);
    raw[0] = 2;
    raw[1] = CG_CMD_GET_WALLET;
    assert_int_equal(cg_cmd_decode(&d, raw, 35), RT_UNIMPLEMENTED);
    assert_int_equal(cg_cmd_decode(&d, NULL, 0), RT_INVALID_ARGUMENT);
    c.kind = 77;
    assert_int_equal(cg_cmd_encode(&c, NULL, 0, &len), RT_INVALID_ARGUMENT);
}

static void test_replies(void **state)
{
    (void)state;
    uint8_t tpk[33], sig[64], agg[66];
    fill(tpk, 33, 5);
    fill(sig, 64, 6);
    fill(agg, 66, 7);
    cg_reply rs[5];
    memset(rs, 0, sizeof rs);
    rs[0].kind = CG_CMD_DKG_ROUND1;
    rs[0].u.dkg1.cmsg1 = blob;
    rs[0].u.dkg1.cmsg1_len = 555;
    rs[1].kind = CG_CMD_DKG_ROUND2;
    rs[1].u.dkg2.thresh_pubkey = tpk;
    rs[1].u.dkg2.cmsg2 = blob;
    rs[1].u.dkg2.cmsg2_len = 192;
    rs[2].kind = CG_CMD_SIGN_ROUND1;
    rs[2].u.sign1.aggnonce = agg;
    rs[3].kind = CG_CMD_SIGN_ROUND2;
    rs[3].u.sign2.sig = sig;
    rs[4].kind = CG_CMD_GET_WALLET;
    rs[4].u.wallet.thresh_pubkey = tpk;
    rs[4].u.wallet.t = 2;
    rs[4].u.wallet.n = 3;
    rs[4].u.wallet.hostpubkeys = pk[0];
    rs[4].u.wallet.pubshares = pk[5];
    for (int i = 0; i < 5; i++) {
        size_t need, len;
        assert_int_equal(cg_reply_encode(&rs[i], NULL, 0, &need), RT_OUT_OF_RANGE);
        assert_true(need <= CG_REPLY_MAX_LEN);
        uint8_t *buf = malloc(need + 1);
        assert_int_equal(cg_reply_encode(&rs[i], buf, need, &len), RT_OK);
        cg_reply d;
        assert_int_equal(cg_reply_decode(&d, buf, len), RT_OK);
        assert_int_equal(d.kind, rs[i].kind);
        for (size_t l = 0; l < len; l++)
            assert_int_not_equal(cg_reply_decode(&d, buf, l), RT_OK);
        buf[len] = 0;
        assert_int_equal(cg_reply_decode(&d, buf, len + 1), RT_INVALID_ARGUMENT);
        assert_int_equal(cg_reply_decode(&d, buf, len), RT_OK);
        switch (i) {
        case 0:
            assert_int_equal(d.u.dkg1.cmsg1_len, 555);
            assert_memory_equal(d.u.dkg1.cmsg1, blob, 555);
            break;
        case 1:
            assert_memory_equal(d.u.dkg2.thresh_pubkey, tpk, 33);
            assert_int_equal(d.u.dkg2.cmsg2_len, 192);
            break;
        case 2:
            assert_memory_equal(d.u.sign1.aggnonce, agg, 66);
            break;
        case 3:
            assert_memory_equal(d.u.sign2.sig, sig, 64);
            break;
        case 4:
            assert_int_equal(d.u.wallet.t, 2);
            assert_int_equal(d.u.wallet.n, 3);
            assert_memory_equal(d.u.wallet.hostpubkeys, pk[0], 99);
            assert_memory_equal(d.u.wallet.pubshares, pk[5], 99);
            break;
        }
        free(buf);
    }
}

static void test_config(void **state)
{
    (void)state;
    cg_config c = {.rendezvous_ms = 1234567, .flags = CG_CONFIG_FAULT_INJECTION}, d;
    uint8_t b[CG_CONFIG_LEN];
    cg_config_encode(&c, b);
    assert_int_equal(cg_config_decode(&d, b, sizeof b), RT_OK);
    assert_int_equal(d.rendezvous_ms, 1234567);
    assert_int_equal(d.flags, CG_CONFIG_FAULT_INJECTION);
    assert_int_equal(cg_config_decode(&d, b, sizeof b - 1), RT_INVALID_ARGUMENT);
    b[5] = 0x80;
    assert_int_equal(cg_config_decode(&d, b, sizeof b), RT_INVALID_ARGUMENT);
}

/* Random bytes must never crash the decoders (a cheap in-test fuzz; the
 * fuzz suite runs the same entry points under libFuzzer). */
static void test_random_inputs(void **state)
{
    (void)state;
    uint8_t buf[512];
    srand(1);
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)rand() % sizeof buf;
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rand();
        if (len > 1) {
            buf[0] = CG_CMD_VERSION;
            buf[1] = (uint8_t)(1 + rand() % 5);
        }
        cg_cmd c;
        cg_reply r;
        if (cg_cmd_decode(&c, buf, len) == RT_OK) {
            size_t l2;
            uint8_t out[512];
            assert_int_equal(cg_cmd_encode(&c, out, sizeof out, &l2), RT_OK);
            assert_int_equal(l2, len);
            assert_memory_equal(out, buf, len);
        }
        (void)cg_reply_decode(&r, buf, len);
    }
}

static int hex(uint8_t *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sscanf(s + 2 * i, "%2hhx", &out[i]) != 1) return 0;
    return 1;
}

/* tests/vectors/chilldkg/params_hash_vectors.json, valid case 1 and the errors. */
static void test_wallet_id(void **state)
{
    (void)state;
    static const char *keys[] = {
        "03AED316469060698D774150EFD7F8F406A2BAB516DD7D22CB258323C59C6417F3",
        "03AEB5AE20783D4858F6767747963F144C7DB8ABA328625CC8A87F7676D8CDEEE7",
        "021A48BBCCAC751AE9EC1EA7A7F8D421D5FD60AAB44E6D2F37B31873098A77B7A3",
    };
    uint8_t hk[4][33], exp[32], out[32];
    uint64_t blame;
    for (int i = 0; i < 3; i++)
        assert_true(hex(hk[i], keys[i], 33));
    assert_true(hex(exp, "6A03D4E831DBF10F71C2C47F8F31FA5BCEDBC266B336DEBA7E11607697CEEB7C", 32));
    assert_int_equal(cg_wallet_id(hk[0], 3, 2, out, &blame), RT_OK);
    assert_memory_equal(out, exp, 32);
    assert_int_equal(blame, 0);
    assert_int_equal(cg_wallet_id(hk[0], 3, 0, out, &blame), RT_INVALID_ARGUMENT);
    assert_int_equal(cg_wallet_id(hk[0], 3, 4, out, &blame), RT_INVALID_ARGUMENT);
    memcpy(hk[3], hk[1], 33);
    assert_int_equal(cg_wallet_id(hk[0], 4, 2, out, &blame), RT_INVALID_ARGUMENT);
    assert_int_equal(blame, (1u << 1) | (1u << 3));
    assert_true(
        hex(hk[1], "030000000000000000000000000000000000000000000000000000000000000005", 33));
    assert_int_equal(cg_wallet_id(hk[0], 3, 2, out, &blame), RT_INVALID_ARGUMENT);
    assert_int_equal(blame, 1u << 1);
}

int main(void)
{
    cx_init();
    for (int i = 0; i < CG_MAX_PARTICIPANTS; i++)
        fill(pk[i], 33, (uint8_t)(i * 31));
    fill(blob, sizeof blob, 42);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dkg1_roundtrip),  cmocka_unit_test(test_dkg2_roundtrip),
        cmocka_unit_test(test_sign1_roundtrip), cmocka_unit_test(test_sign2_wallet_fault),
        cmocka_unit_test(test_replies),         cmocka_unit_test(test_config),
        cmocka_unit_test(test_random_inputs),   cmocka_unit_test(test_wallet_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
