/*
 * The device library without a service: a ChillDKG session run in process
 * (every participant and the coordinator, as in tests/dkg) produces the
 * recovery data, and cdev_recover_from must rebuild each participant's
 * exact secret share, threshold key and public shares from it and the
 * participant's host key alone. Also the state file: its format, its
 * round trip, and that a load refuses what is not this device's.
 *
 *   test_cdev               the cmocka tests
 *   test_cdev --emit DIR    writes DIR/key and DIR/state of one device (for
 *                           the installed-library test) and exits
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cg_cx.h"
#include "cg_dkg.h"
#include "cosigner_device.h"
#include "net.h"

#define N 3
#define T 2

/* One in-process ChillDKG session (on the heap: the states are KiBs). */
typedef struct session {
    uint8_t sk[N][32];
    cg_dkg_params params;
    cg_dkg_pstate1 st1[N];
    cg_dkg_pstate2 st2[N];
    cg_dkg_cstate cst;
    uint8_t pmsg1[N][CG_DKG_PMSG1_MAX];
    size_t pmsg1_len[N];
    const uint8_t *pmsg1_ptr[N];
    uint8_t cmsg1[CG_DKG_CMSG1_MAX];
    size_t cmsg1_len;
    uint8_t pmsg2[N][64];
    size_t pmsg2_len[N];
    const uint8_t *pmsg2_ptr[N];
    uint8_t cmsg2[CG_DKG_CMSG2_MAX];
    size_t cmsg2_len;
    cg_dkg_output pout[N], cout;
    uint8_t prec[N][CG_DKG_RECOVERY_MAX], crec[CG_DKG_RECOVERY_MAX];
    size_t prec_len[N], crec_len;
    uint8_t wallet_id[32];
} session;

static session *run_dkg(void)
{
    session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    cg_dkg_error e;
    s->params.n = N;
    s->params.t = T;
    for (int i = 0; i < N; i++) {
        uint8_t pk[33];
        if (cdev_keygen(s->sk[i], pk) != CDEV_OK) return NULL;
        memcpy(s->params.hostpubkeys[i], pk, 33);
    }
    for (int i = 0; i < N; i++) {
        uint8_t rnd[32];
        cx_random(rnd, 32);
        if (cg_dkg_participant_step1(&s->st1[i], s->pmsg1[i], sizeof s->pmsg1[i], &s->pmsg1_len[i],
                                     s->sk[i], 32, &s->params, rnd, 32, &e) != RT_OK)
            return NULL;
        s->pmsg1_ptr[i] = s->pmsg1[i];
    }
    if (cg_dkg_coordinator_step1(&s->cst, s->cmsg1, sizeof s->cmsg1, &s->cmsg1_len, s->pmsg1_ptr,
                                 s->pmsg1_len, N, &s->params, &e) != RT_OK)
        return NULL;
    for (int i = 0; i < N; i++) {
        uint8_t aux[32];
        cx_random(aux, 32);
        if (cg_dkg_participant_step2(&s->st2[i], s->pmsg2[i], s->sk[i], 32, &s->st1[i], s->cmsg1,
                                     s->cmsg1_len, aux, 32, NULL, &e) != RT_OK)
            return NULL;
        s->pmsg2_len[i] = 64;
        s->pmsg2_ptr[i] = s->pmsg2[i];
    }
    if (cg_dkg_coordinator_finalize(s->cmsg2, sizeof s->cmsg2, &s->cmsg2_len, &s->cout, s->crec,
                                    sizeof s->crec, &s->crec_len, &s->cst, s->pmsg2_ptr,
                                    s->pmsg2_len, N, &e) != RT_OK)
        return NULL;
    for (int i = 0; i < N; i++)
        if (cg_dkg_participant_finalize(&s->pout[i], s->prec[i], sizeof s->prec[i], &s->prec_len[i],
                                        &s->st2[i], s->cmsg2, s->cmsg2_len, &e) != RT_OK)
            return NULL;
    if (cg_dkg_params_hash(s->wallet_id, &s->params, NULL) != RT_OK) return NULL;
    return s;
}

static void session_free(session *s)
{
    cg_dkg_wipe(s, sizeof *s);
    free(s);
}

static int setup(void **state)
{
    *state = run_dkg();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    session_free(*state);
    return 0;
}

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static void hex_field_equals(json_t *o, const char *k, const uint8_t *want, size_t len)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    uint8_t got[CG_DKG_RECOVERY_MAX];
    assert_true(len <= sizeof got);
    assert_true(net_hex_decode(got, len, json_string_value(v), json_string_length(v)));
    assert_memory_equal(got, want, len);
}

static cdev_device *device_of(const session *s, int i)
{
    cdev_device *d = NULL;
    assert_int_equal(cdev_new(&d, s->sk[i]), CDEV_OK);
    return d;
}

/* What the brief of recovery promises: the host key plus the (public)
 * recovery data give back the participant's own DKG output, exactly. */
static void test_recover_rebuilds_outputs(void **state)
{
    session *s = *state;
    for (int i = 0; i < N; i++) {
        cdev_device *d = device_of(s, i);
        /* any party's copy of the recovery data will do: the coordinator's here */
        assert_int_equal(cdev_recover_from(d, s->crec, s->crec_len, s->wallet_id), CDEV_OK);
        cdev_wallet_info w;
        assert_int_equal(cdev_wallet(d, &w), CDEV_OK);
        assert_int_equal(w.n, N);
        assert_int_equal(w.t, T);
        assert_int_equal(w.index, i);
        assert_int_equal(w.recovery_len, s->crec_len);
        assert_memory_equal(w.wallet_id, s->wallet_id, 32);
        assert_memory_equal(w.thresh_pubkey, s->pout[i].threshold_pubkey, 33);
        /* the secret share is only in the state file: check it there */
        const char *path = tmp_path("recovered.json");
        assert_int_equal(cdev_state_save(d, path), CDEV_OK);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        json_t *j = json_load_file(path, 0, NULL);
        assert_non_null(j);
        hex_field_equals(j, "secshare", s->pout[i].secshare, 32);
        hex_field_equals(j, "thresh_pubkey", s->cout.threshold_pubkey, 33);
        hex_field_equals(j, "wallet_id", s->wallet_id, 32);
        hex_field_equals(j, "recovery", s->crec, s->crec_len);
        assert_int_equal(json_integer_value(json_object_get(j, "index")), i);
        json_t *ps = json_object_get(j, "pubshares");
        assert_int_equal(json_array_size(ps), N);
        for (int k = 0; k < N; k++) {
            uint8_t b[33];
            json_t *v = json_array_get(ps, (size_t)k);
            assert_true(net_hex_decode(b, 33, json_string_value(v), json_string_length(v)));
            assert_memory_equal(b, s->pout[i].pubshares[k], 33);
        }
        /* never the host secret key */
        char skh[65];
        net_hex_encode(skh, s->sk[i], 32);
        char *text = json_dumps(j, 0);
        assert_null(strstr(text, skh));
        free(text);
        json_decref(j);
        cdev_free(d);
    }
}

static void test_recover_refuses(void **state)
{
    session *s = *state;
    cdev_device *d = device_of(s, 1);
    uint8_t other[32], buf[CG_DKG_RECOVERY_MAX];
    memcpy(other, s->wallet_id, 32);
    other[0] ^= 1;
    assert_int_equal(cdev_recover_from(d, s->crec, s->crec_len, other), CDEV_ERR_FORMAT);
    assert_true(cdev_error(d)[0]);
    memcpy(buf, s->crec, s->crec_len);
    buf[s->crec_len - 1] ^= 1; /* the certificate */
    assert_int_equal(cdev_recover_from(d, buf, s->crec_len, NULL), CDEV_ERR_FORMAT);
    assert_int_equal(cdev_recover_from(d, s->crec, s->crec_len - 1, NULL), CDEV_ERR_FORMAT);
    assert_int_equal(cdev_recover_from(d, s->crec, 0, NULL), CDEV_ERR_FORMAT);
    assert_int_equal(cdev_recover_from(d, s->crec, CG_DKG_RECOVERY_MAX + 1, NULL), CDEV_ERR_FORMAT);
    cdev_wallet_info w;
    assert_int_equal(cdev_wallet(d, &w), CDEV_ERR_ARG); /* nothing adopted */
    cdev_free(d);
    /* a key that is not a participant */
    uint8_t sk[32], pk[33];
    assert_int_equal(cdev_keygen(sk, pk), CDEV_OK);
    assert_int_equal(cdev_new(&d, sk), CDEV_OK);
    assert_int_equal(cdev_recover_from(d, s->crec, s->crec_len, NULL), CDEV_ERR_FORMAT);
    cdev_free(d);
    cdev_wipe(sk, sizeof sk);
}

static void test_state_round_trip(void **state)
{
    session *s = *state;
    cdev_device *a = device_of(s, 2), *b = device_of(s, 2), *c = device_of(s, 0);
    assert_int_equal(cdev_recover_from(a, s->prec[2], s->prec_len[2], s->wallet_id), CDEV_OK);
    const char *p1 = tmp_path("s1.json"), *p2 = tmp_path("s2.json");
    assert_int_equal(cdev_state_save(a, p1), CDEV_OK);
    assert_int_equal(cdev_state_load(b, p1), CDEV_OK);
    assert_int_equal(cdev_state_save(b, p2), CDEV_OK);
    /* byte for byte: the writer is deterministic and the load lost nothing */
    char t1[65536], t2[65536];
    FILE *f1 = fopen(p1, "r"), *f2 = fopen(p2, "r");
    size_t l1 = fread(t1, 1, sizeof t1, f1), l2 = fread(t2, 1, sizeof t2, f2);
    fclose(f1);
    fclose(f2);
    assert_int_equal(l1, l2);
    assert_memory_equal(t1, t2, l1);
    /* another participant's key refuses the file */
    assert_int_equal(cdev_state_load(c, p1), CDEV_ERR_FORMAT);
    /* a replaced temporary from a crashed write does not stop the next one */
    FILE *stale = fopen(tmp_path("s1.json.tmp"), "w");
    fputs("junk", stale);
    fclose(stale);
    assert_int_equal(cdev_state_save(a, p1), CDEV_OK);
    assert_int_equal(access(tmp_path("s1.json.tmp"), F_OK), -1);
    assert_int_equal(cdev_state_load(b, tmp_path("missing.json")), CDEV_ERR_IO);
    cdev_free(a);
    cdev_free(b);
    cdev_free(c);
}

/* Writes the state file with field k replaced by v (a JSON value). */
static void tamper(const char *src, const char *dst, const char *k, json_t *v)
{
    json_t *j = json_load_file(src, 0, NULL);
    assert_non_null(j);
    if (v)
        json_object_set_new(j, k, v);
    else
        json_object_del(j, k);
    assert_int_equal(json_dump_file(j, dst, 0), 0);
    json_decref(j);
}

static void test_state_load_validates(void **state)
{
    session *s = *state;
    cdev_device *a = device_of(s, 1);
    assert_int_equal(cdev_recover_from(a, s->crec, s->crec_len, NULL), CDEV_OK);
    const char *good = tmp_path("good.json"), *bad = tmp_path("bad.json");
    assert_int_equal(cdev_state_save(a, good), CDEV_OK);
    char h[2 * 33 + 1];
    /* another participant's share */
    net_hex_encode(h, s->pout[2].secshare, 32);
    tamper(good, bad, "secshare", json_string(h));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    /* a wallet id that is not the params hash */
    net_hex_encode(h, s->pout[2].secshare, 32);
    tamper(good, bad, "wallet_id", json_string(h));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    /* not a point */
    memset(h, 'f', 66);
    h[66] = 0;
    tamper(good, bad, "thresh_pubkey", json_string(h));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    /* the index of someone else */
    tamper(good, bad, "index", json_integer(2));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    tamper(good, bad, "index", json_integer(99));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    tamper(good, bad, "version", json_integer(2));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    tamper(good, bad, "recovery", json_string("00"));
    assert_int_equal(cdev_state_load(a, bad), CDEV_ERR_FORMAT);
    /* recovery data is optional */
    tamper(good, bad, "recovery", NULL);
    assert_int_equal(cdev_state_load(a, bad), CDEV_OK);
    cdev_wallet_info w;
    assert_int_equal(cdev_wallet(a, &w), CDEV_OK);
    assert_int_equal(w.recovery_len, 0);
    cdev_free(a);
}

static void test_keys_and_arguments(void **state)
{
    session *s = *state;
    uint8_t sk[32], pk[33], back[32], pk2[33];
    assert_int_equal(cdev_keygen(sk, pk), CDEV_OK);
    const char *kf = tmp_path("key");
    assert_int_equal(cdev_key_save(kf, sk), CDEV_OK);
    struct stat st;
    assert_int_equal(stat(kf, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(cdev_key_load(kf, back), CDEV_OK);
    assert_memory_equal(sk, back, 32);
    cdev_device *d = NULL;
    assert_int_equal(cdev_new(&d, back), CDEV_OK);
    cdev_hostpubkey(d, pk2);
    assert_memory_equal(pk, pk2, 33);
    /* refused before any request: no wallet, bad params, bad token */
    uint8_t sid[32] = {1}, sig[64];
    uint32_t ids[2] = {0, 1};
    assert_int_equal(cdev_sign_join(d, "http://127.0.0.1:9", sid, ids, 2, (const uint8_t *)"m", 1,
                                    0, NULL, sig, NULL),
                     CDEV_ERR_ARG);
    assert_int_equal(cdev_dkg_join(d, "http://127.0.0.1:9",
                                   (const uint8_t(*)[33])s->params.hostpubkeys, N, T, NULL),
                     CDEV_ERR_ARG); /* this key is not in the params */
    uint8_t hpk[N][33];
    memcpy(hpk, s->params.hostpubkeys, sizeof hpk);
    memcpy(hpk[0], pk, 33);
    assert_int_equal(
        cdev_dkg_join(d, "http://127.0.0.1:9", (const uint8_t(*)[33])hpk, N, N + 1, NULL),
        CDEV_ERR_ARG);
    assert_int_equal(
        cdev_dkg_join(d, "http://127.0.0.1:9", (const uint8_t(*)[33])hpk, N, T, "not-hex"),
        CDEV_ERR_ARG);
    memcpy(hpk[1], pk, 33); /* duplicate */
    assert_int_equal(cdev_dkg_join(d, "http://127.0.0.1:9", (const uint8_t(*)[33])hpk, N, T, NULL),
                     CDEV_ERR_ARG);
    /* a signer set without this device, or too small, or with repeats */
    cdev_device *a = device_of(s, 1);
    assert_int_equal(cdev_recover_from(a, s->crec, s->crec_len, NULL), CDEV_OK);
    uint32_t not_me[2] = {0, 2}, small[1] = {1}, twice[2] = {1, 1};
    assert_int_equal(
        cdev_sign_join(a, "http://127.0.0.1:9", sid, not_me, 2, NULL, 0, 0, NULL, NULL, NULL),
        CDEV_ERR_ARG);
    assert_int_equal(
        cdev_sign_join(a, "http://127.0.0.1:9", sid, small, 1, NULL, 0, 0, NULL, NULL, NULL),
        CDEV_ERR_ARG);
    assert_int_equal(
        cdev_sign_join(a, "http://127.0.0.1:9", sid, twice, 2, NULL, 0, 0, NULL, NULL, NULL),
        CDEV_ERR_ARG);
    /* nobody listens on port 9: a transport failure, reported as such */
    uint32_t ok_ids[2] = {1, 0};
    assert_int_equal(
        cdev_sign_join(a, "http://127.0.0.1:9", sid, ok_ids, 2, NULL, 0, 0, NULL, NULL, NULL),
        CDEV_ERR_TRANSPORT);
    assert_string_equal(cdev_error_code(a), "TRANSPORT");
    cdev_free(a);
    cdev_free(d);
    FILE *f = fopen(kf, "w");
    fputs("00\n", f);
    fclose(f);
    assert_int_equal(cdev_key_load(kf, back), CDEV_ERR_FORMAT);
    cdev_wipe(sk, sizeof sk);
    cdev_wipe(back, sizeof back);
}

static int emit(const char *dir)
{
    session *s = run_dkg();
    if (!s) return 1;
    char kp[512], sp[512];
    snprintf(kp, sizeof kp, "%s/key", dir);
    snprintf(sp, sizeof sp, "%s/state", dir);
    cdev_device *d = NULL;
    int ok = cdev_key_save(kp, s->sk[1]) == CDEV_OK && cdev_new(&d, s->sk[1]) == CDEV_OK &&
             cdev_recover_from(d, s->crec, s->crec_len, s->wallet_id) == CDEV_OK &&
             cdev_state_save(d, sp) == CDEV_OK;
    cdev_free(d);
    session_free(s);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (cdev_init() != CDEV_OK) return 1;
    if (argc == 3 && !strcmp(argv[1], "--emit")) return emit(argv[2]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_cdev.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recover_rebuilds_outputs),
        cmocka_unit_test(test_recover_refuses),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_load_validates),
        cmocka_unit_test(test_keys_and_arguments),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    return rc;
}
