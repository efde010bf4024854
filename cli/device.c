/*
 * device.c — the one-device commands of cosigner-cli (see device.h). Built
 * only on the public device library, cosigner_device.h, as a wallet app
 * would be: what works here works for them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libgen.h>
#include <unistd.h>

#include <jansson.h>

#include "cosigner_device.h"
#include "device.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Exactly len bytes of hex in s (of slen characters). */
static int unhex(uint8_t *out, size_t len, const char *s, size_t slen)
{
    if (slen != 2 * len) return 0;
    for (size_t i = 0; i < len; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

static void tohex(char *out, const uint8_t *in, size_t len)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * len] = 0;
}

static void print_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "{\"ok\":false}");
    free(s);
    json_decref(o);
}

/* Reports a failure and returns its exit status. d (may be NULL) adds the
 * library's detail and the service's code. */
static int failure(int json, int rc, const char *what, const cdev_device *d, cdev_status st)
{
    char msg[512];
    if (st != CDEV_OK)
        snprintf(msg, sizeof msg, "%s: %s%s%s", what, cdev_status_str(st),
                 d && cdev_error(d)[0] ? ": " : "", d ? cdev_error(d) : "");
    else
        snprintf(msg, sizeof msg, "%s", what);
    if (json) {
        json_t *o = json_pack("{s:b,s:s}", "ok", 0, "error", msg);
        if (o && d && cdev_error_code(d)[0])
            json_object_set_new(o, "code", json_string(cdev_error_code(d)));
        if (o && d && cdev_http_code(d))
            json_object_set_new(o, "http_status", json_integer(cdev_http_code(d)));
        print_json(o);
    } else {
        fprintf(stderr, "cosigner-cli: %s\n", msg);
    }
    return rc;
}

/* A device from its key file; returns 0 or the exit status of the failure. */
static int open_device(int json, const char *keyf, cdev_device **d)
{
    uint8_t sk[CDEV_SECKEY_LEN];
    cdev_status st = cdev_key_load(keyf, sk);
    if (st != CDEV_OK) return failure(json, 1, "cannot read the host key file", NULL, st);
    st = cdev_new(d, sk);
    cdev_wipe(sk, sizeof sk);
    if (st != CDEV_OK) return failure(json, 1, "bad host key", NULL, st);
    return 0;
}

/* What every command prints about the device's wallet once it has one. */
static json_t *wallet_json(const cdev_device *d, const char *state)
{
    cdev_wallet_info w;
    if (cdev_wallet(d, &w) != CDEV_OK) return NULL;
    char wid[65], tpk[67];
    tohex(wid, w.wallet_id, 32);
    tohex(tpk, w.thresh_pubkey, 33);
    return json_pack("{s:b,s:s,s:s,s:i,s:i,s:i,s:s,s:b}", "ok", 1, "wallet_id", wid,
                     "thresh_pubkey", tpk, "index", (int)w.index, "t", (int)w.t, "n", (int)w.n,
                     "state_file", state, "recovery_kept", w.recovery_len > 0);
}

static void print_wallet(int json, const cdev_device *d, const char *state, const char *what)
{
    json_t *o = wallet_json(d, state);
    if (json) {
        print_json(o);
        return;
    }
    printf("%s: %lld-of-%lld wallet, this device is participant %lld\n"
           "wallet id:        %s\nthreshold pubkey: %s\nstate file:       %s (mode 0600)\n",
           what, json_integer_value(json_object_get(o, "t")),
           json_integer_value(json_object_get(o, "n")),
           json_integer_value(json_object_get(o, "index")),
           json_string_value(json_object_get(o, "wallet_id")),
           json_string_value(json_object_get(o, "thresh_pubkey")), state);
    json_decref(o);
}

/* params: a file, or inline JSON when it starts with '{'; either the params
 * object itself or an object holding it as "params" (a round-1 body). */
static int load_params(const char *arg, uint8_t (*hpk)[CDEV_PUBKEY_LEN], uint32_t *n, uint32_t *t)
{
    json_t *j = arg[0] == '{' ? json_loads(arg, 0, NULL) : json_load_file(arg, 0, NULL);
    json_t *p = json_object_get(j, "params") ?: j;
    json_t *h = json_object_get(p, "hostpubkeys"), *tv = json_object_get(p, "t");
    size_t count = json_array_size(h);
    int ok = json_is_integer(tv) && count >= 1 && count <= CDEV_MAX_PARTICIPANTS &&
             json_integer_value(tv) >= 1 && json_integer_value(tv) <= (json_int_t)count;
    for (size_t i = 0; ok && i < count; i++) {
        json_t *e = json_array_get(h, i);
        ok = json_is_string(e) &&
             unhex(hpk[i], CDEV_PUBKEY_LEN, json_string_value(e), json_string_length(e));
    }
    if (ok) {
        *n = (uint32_t)count;
        *t = (uint32_t)json_integer_value(tv);
    }
    json_decref(j);
    return ok;
}

/* Whether a state file can be written at path: checked before a DKG, since
 * a share that cannot be saved is lost to this run (recover gets it back,
 * but only once the service serves its recovery data). */
static int state_writable(const char *path)
{
    char dup[4096];
    if (snprintf(dup, sizeof dup, "%s", path) >= (int)sizeof dup) return 0;
    return access(dirname(dup), W_OK | X_OK) == 0;
}

int cli_dkg_join(const char *url, int json, int argc, char **argv)
{
    const char *keyf = NULL, *params = NULL, *state = NULL, *token = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--params") && i + 1 < argc)
            params = argv[++i];
        else if (!strcmp(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (!strcmp(argv[i], "--token") && i + 1 < argc)
            token = argv[++i];
        else if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else
            return failure(json, 2, "dkg join: unknown argument (see --help)", NULL, CDEV_OK);
    }
    if (!keyf || !params || !state)
        return failure(json, 2, "dkg join: need --key FILE --params P --state FILE", NULL, CDEV_OK);
    static uint8_t hpk[CDEV_MAX_PARTICIPANTS][CDEV_PUBKEY_LEN];
    uint32_t n, t;
    if (!load_params(params, hpk, &n, &t))
        return failure(json, 2,
                       "dkg join: --params must be {\"hostpubkeys\": [hex33...], \"t\": int} "
                       "(a file or inline), 1 <= t <= n <= 32",
                       NULL, CDEV_OK);
    if (!state_writable(state))
        return failure(json, 1, "dkg join: the state file's directory is not writable", NULL,
                       CDEV_OK);
    cdev_device *d = NULL;
    int rc = open_device(json, keyf, &d);
    if (rc) return rc;
    cdev_status st = cdev_dkg_join(d, url, (const uint8_t(*)[CDEV_PUBKEY_LEN])hpk, n, t, token);
    if (st == CDEV_OK) {
        st = cdev_state_save(d, state);
        if (st != CDEV_OK) rc = failure(json, 1, "cannot write the state file", NULL, st);
    } else {
        rc = failure(json, st == CDEV_ERR_ARG ? 2 : 1, "DKG failed", d, st);
    }
    if (!rc) print_wallet(json, d, state, "DKG complete");
    cdev_free(d);
    return rc;
}

/* "I,J,K": participant indices. */
static int parse_signers(const char *s, uint32_t *ids, size_t *count)
{
    *count = 0;
    while (*s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v >= CDEV_MAX_PARTICIPANTS || *count == CDEV_MAX_PARTICIPANTS) return 0;
        ids[(*count)++] = (uint32_t)v;
        if (*end == ',')
            end++;
        else if (*end)
            return 0;
        s = end;
    }
    return *count > 0;
}

int cli_sign_join(const char *url, int json, int argc, char **argv)
{
    const char *keyf = NULL, *state = NULL, *sidh = NULL, *msgh = NULL, *signers = NULL, *mr = NULL;
    int taproot = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (!strcmp(argv[i], "--session") && i + 1 < argc)
            sidh = argv[++i];
        else if (!strcmp(argv[i], "--msg") && i + 1 < argc)
            msgh = argv[++i];
        else if (!strcmp(argv[i], "--signers") && i + 1 < argc)
            signers = argv[++i];
        else if (!strcmp(argv[i], "--taproot"))
            taproot = 1;
        else if (!strcmp(argv[i], "--merkle-root") && i + 1 < argc)
            mr = argv[++i];
        else if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else
            return failure(json, 2, "sign join: unknown argument (see --help)", NULL, CDEV_OK);
    }
    if (!keyf || !state || !sidh || !msgh || !signers)
        return failure(json, 2,
                       "sign join: need --key FILE --state FILE --session SID --msg HEX "
                       "--signers I,J,...",
                       NULL, CDEV_OK);
    uint8_t sid[CDEV_SESSION_ID_LEN], msg[CDEV_MSG_MAX], root[32];
    size_t ml = strlen(msgh) / 2;
    uint32_t ids[CDEV_MAX_PARTICIPANTS];
    size_t count;
    if (!unhex(sid, sizeof sid, sidh, strlen(sidh)))
        return failure(json, 2, "sign join: --session must be 32 bytes of hex", NULL, CDEV_OK);
    if (ml > sizeof msg || !unhex(msg, ml, msgh, strlen(msgh)))
        return failure(json, 2, "sign join: --msg must be hex, at most 256 bytes", NULL, CDEV_OK);
    if (mr && (!taproot || !unhex(root, 32, mr, strlen(mr))))
        return failure(json, 2, "sign join: --merkle-root needs --taproot and 32 bytes of hex",
                       NULL, CDEV_OK);
    if (!parse_signers(signers, ids, &count))
        return failure(json, 2, "sign join: --signers must be participant indices I,J,...", NULL,
                       CDEV_OK);
    cdev_device *d = NULL;
    int rc = open_device(json, keyf, &d);
    if (rc) return rc;
    cdev_status st = cdev_state_load(d, state);
    if (st != CDEV_OK) {
        rc = failure(json, 1, "cannot load the state file", d, st);
        cdev_free(d);
        return rc;
    }
    uint8_t sig[CDEV_SIG_LEN], xonly[32];
    st = cdev_sign_join(d, url, sid, ids, count, msg, ml, taproot, mr ? root : NULL, sig, xonly);
    if (st != CDEV_OK) {
        rc = failure(json, st == CDEV_ERR_ARG ? 2 : 1, "signing failed", d, st);
        cdev_free(d);
        return rc;
    }
    char sh[129], kh[65];
    tohex(sh, sig, 64);
    tohex(kh, xonly, 32);
    if (json)
        printf("{\"ok\":true,\"signature\":\"%s\",\"pubkey_xonly\":\"%s\",\"verified\":true}\n", sh,
               kh);
    else
        printf("signature: %s\nverifies under %s key %s (checked locally with libsecp256k1)\n", sh,
               taproot ? "Taproot output" : "threshold", kh);
    cdev_free(d);
    return 0;
}

int cli_recover(const char *url, int json, int argc, char **argv)
{
    const char *keyf = NULL, *walleth = NULL, *state = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--wallet") && i + 1 < argc)
            walleth = argv[++i];
        else if (!strcmp(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else
            return failure(json, 2, "recover: unknown argument (see --help)", NULL, CDEV_OK);
    }
    uint8_t wid[CDEV_WALLET_ID_LEN];
    if (!keyf || !walleth || !state)
        return failure(json, 2, "recover: need --key FILE --wallet WALLET_ID --state FILE", NULL,
                       CDEV_OK);
    if (!unhex(wid, sizeof wid, walleth, strlen(walleth)))
        return failure(json, 2, "recover: --wallet must be the 32-byte wallet id in hex", NULL,
                       CDEV_OK);
    if (!state_writable(state))
        return failure(json, 1, "recover: the state file's directory is not writable", NULL,
                       CDEV_OK);
    cdev_device *d = NULL;
    int rc = open_device(json, keyf, &d);
    if (rc) return rc;
    cdev_status st = cdev_recover(d, url, wid);
    if (st == CDEV_OK) {
        st = cdev_state_save(d, state);
        if (st != CDEV_OK) rc = failure(json, 1, "cannot write the state file", NULL, st);
    } else {
        rc = failure(json, 1, "recovery failed", d, st);
    }
    if (!rc) print_wallet(json, d, state, "recovered");
    cdev_free(d);
    return rc;
}
