/*
 * cli.c — cosigner-cli: what a wallet app embeds, as a command-line tool.
 *
 *   cosigner-cli keygen [--out FILE]
 *   cosigner-cli --url URL info
 *   cosigner-cli --url URL dkg --t T (--devices D | --key FILE...) [--out WALLET]
 *   cosigner-cli --url URL sign --wallet WALLET --msg HEX [--taproot [--merkle-root HEX]]
 *                [--signers I,J,...]
 *   cosigner-cli dkg join | sign join | recover ...   (device.c)
 *   cosigner-cli --url URL recovery --wallet WALLET [--key FILE] [--out FILE]
 *   cosigner-cli --url URL restore --recovery-file FILE (--wallet WALLET | --key FILE)
 *   cosigner-cli --url URL admin retire --admin-key FILE --wallet ID|WALLET [--grace-s N]
 *
 * dkg and sign simulate every device of the wallet in this process (one
 * request per device per round, concurrently, since each round is a
 * rendezvous); dkg join, sign join and recover are one device (device.h).
 * Human-readable output by default; --json for scripts. Exit status 0 on
 * success, 1 on a refused or failed operation, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cg_config.h"
#include "cx.h"
#include "admin.h"
#include "dev.h"
#include "device.h"
#include "net.h"

static int json_out;

static uint64_t net_unix_ms_cli(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cosigner-cli [--url URL] [--json] COMMAND [ARGS]\n\n"
            "Commands:\n"
            "  keygen [--out FILE]             new device host key (hex secret to FILE, 0600)\n"
            "  info                            the service's host public key and version\n"
            "  dkg --t T (--devices D | --key FILE...) [--out WALLET] [--token T | --admin-key F]\n"
            "                                  ChillDKG between D simulated devices and the\n"
            "                                  service (n = D + 1, threshold T); --token: the\n"
            "                                  operator's enrollment token (hex); --admin-key:\n"
            "                                  mint one for these devices with that key\n"
            "  sign --wallet WALLET --msg HEX [--taproot] [--merkle-root HEX] [--signers I,J]\n"
            "                                  BIP 445 signing session; the signature is\n"
            "                                  verified locally (libsecp256k1)\n"
            "  recovery --wallet WALLET [--key FILE] [--out FILE]\n"
            "                                  fetch the wallet's ChillDKG recovery data (as a\n"
            "                                  device: the wallet file's first device, or --key)\n"
            "  restore --recovery-file FILE (--wallet WALLET | --key FILE)\n"
            "                                  give a service that lost its record the recovery\n"
            "                                  data back (signed by a device of the wallet)\n"
            "  admin retire --admin-key FILE --wallet ID|WALLET [--grace-s N]\n"
            "                                  retire a wallet (an admin key's signed request)\n"
            "  raw METHOD PATH [--body STR | --body-file F] [--key FILE] [--ts-offset-ms N]\n"
            "      [--nonce HEX] [--bad-sig] [--repeat N [--fresh-nonce]] [--print-auth]\n"
            "                                  one hand-made (optionally signed) request;\n"
            "                                  prints \"CODE BODY\" per response; --repeat\n"
            "                                  resends it as is (a replay) or, with\n"
            "                                  --fresh-nonce, signed anew each time\n\n"
            "One device per process (its own host key and state file):\n"
            "  dkg join --key K --params P --state S [--token T] [--url U]\n"
            "                                  this device's ChillDKG steps; P: a file or\n"
            "                                  inline {\"hostpubkeys\":[hex33...],\"t\":T},\n"
            "                                  the service's key included; writes the\n"
            "                                  state S (mode 0600)\n"
            "  sign join --key K --state S --session SID --msg HEX --signers I,J[,...]\n"
            "      [--taproot [--merkle-root HEX]] [--url U]\n"
            "                                  one signer of a session; every signer is given\n"
            "                                  the same SID (32 bytes hex), msg and signers;\n"
            "                                  the signature is verified locally\n"
            "  recover --key K --wallet W --state S [--url U]\n"
            "                                  rebuilds the state S from the host key and the\n"
            "                                  service's recovery data (ChillDKG recover)\n"
            "\n"
            "Operator (signed with an admin key; see cosigner-cli admin):\n"
            "  admin enroll|revoke|grant|wallets|wallet|audit|retire --admin-key FILE ...\n"
            "\n"
            "Options:\n"
            "  --url URL   service base URL (default http://127.0.0.1:7074, env COSIGNER_URL)\n"
            "  --json      machine-readable output\n");
}

static void die(int code, const char *msg)
{
    if (json_out) {
        json_t *o = json_pack("{s:b,s:s}", "ok", 0, "error", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s\n", s ? s : "{\"ok\":false}");
        free(s);
        json_decref(o);
    } else
        fprintf(stderr, "cosigner-cli: %s\n", msg);
    exit(code);
}

static int read_key(const char *path, uint8_t sk[32], uint8_t pk[33])
{
    return admin_read_key(path, sk, pk);
}

static int write_private(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    return close(fd) == 0 && ok;
}

static int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else
            die(2, "keygen: unknown argument");
    uint8_t sk[32], pk[33];
    char skh[65], pkh[67], line[80];
    if (!dev_keygen(sk, pk)) die(1, "key generation failed");
    net_hex_encode(skh, sk, 32);
    net_hex_encode(pkh, pk, 33);
    if (out) {
        snprintf(line, sizeof line, "%s\n", skh);
        if (!write_private(out, line)) die(1, "cannot write the key file");
    }
    if (json_out) {
        json_t *o = json_pack("{s:b,s:s}", "ok", 1, "hostpubkey", pkh);
        if (out) json_object_set_new(o, "file", json_string(out));
        char *js = json_dumps(o, JSON_COMPACT);
        printf("%s\n", js);
        free(js);
        json_decref(o);
    } else if (out)
        printf("host public key: %s\nsecret key written to %s (mode 0600)\n", pkh, out);
    else
        printf("host public key: %s\nhost secret key: %s\n", pkh, skh);
    cx_wipe(sk, sizeof sk);
    cx_wipe(skh, sizeof skh);
    return 0;
}

static int service_key(const char *url, uint8_t pk[33], char *version, size_t vl)
{
    json_t *j = NULL;
    long code = http_get_json(url, "/v1/info", &j);
    int ok = code == 200 && j;
    if (ok) {
        json_t *h = json_object_get(j, "hostpubkey");
        ok = json_is_string(h) &&
             net_hex_decode(pk, 33, json_string_value(h), json_string_length(h));
        if (version)
            snprintf(version, vl, "%s", json_string_value(json_object_get(j, "version")) ?: "");
    }
    json_decref(j);
    return ok;
}

static int cmd_info(const char *url)
{
    uint8_t pk[33];
    char v[64], pkh[67];
    if (!service_key(url, pk, v, sizeof v)) die(1, "cannot reach the service (GET /v1/info)");
    net_hex_encode(pkh, pk, 33);
    if (json_out)
        printf("{\"ok\":true,\"hostpubkey\":\"%s\",\"version\":\"%s\"}\n", pkh, v);
    else
        printf("service host public key: %s\nversion: %s\n", pkh, v);
    return 0;
}

static int op_ok;
static long op_code;
static char op_msg[256];

static void on_done(dev_user *u, int ok, long code, const char *msg)
{
    (void)u;
    op_ok = ok;
    op_code = code;
    snprintf(op_msg, sizeof op_msg, "%s", msg ? msg : "");
}

static json_t *hexj(const uint8_t *b, size_t n)
{
    char s[2 * 64 + 1];
    net_hex_encode(s, b, n);
    return json_string(s);
}

static json_t *wallet_json(const dev_wallet *w, const char *url)
{
    json_t *h = json_array(), *p = json_array(), *d = json_array();
    for (uint32_t i = 0; i < w->n; i++) {
        json_array_append_new(h, hexj(w->hostpk[i], 33));
        json_array_append_new(p, hexj(w->pubshares[i], 33));
        if (w->is_dev[i])
            json_array_append_new(d, json_pack("{s:i,s:o,s:o}", "index", (int)i, "hostseckey",
                                               hexj(w->seckey[i], 32), "secshare",
                                               hexj(w->secshare[i], 32)));
    }
    return json_pack("{s:s,s:o,s:i,s:i,s:o,s:o,s:o,s:o}", "url", url, "wallet_id",
                     hexj(w->wallet_id, 32), "t", (int)w->t, "service_index", (int)w->svc,
                     "hostpubkeys", h, "thresh_pubkey", hexj(w->thresh_pk, 33), "pubshares", p,
                     "devices", d);
}

static int jget(json_t *o, const char *k, uint8_t *out, size_t len)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) &&
           net_hex_decode(out, len, json_string_value(v), json_string_length(v));
}

static int wallet_load(const char *path, dev_wallet *w)
{
    json_t *j = json_load_file(path, 0, NULL);
    if (!j) return 0;
    memset(w, 0, sizeof *w);
    json_t *h = json_object_get(j, "hostpubkeys"), *p = json_object_get(j, "pubshares");
    json_t *d = json_object_get(j, "devices");
    w->n = (uint32_t)json_array_size(h);
    w->t = (uint32_t)json_integer_value(json_object_get(j, "t"));
    w->svc = (uint32_t)json_integer_value(json_object_get(j, "service_index"));
    int ok = w->n >= 1 && w->n <= DEV_MAX_N && json_array_size(p) == w->n &&
             jget(j, "wallet_id", w->wallet_id, 32) && jget(j, "thresh_pubkey", w->thresh_pk, 33);
    for (uint32_t i = 0; ok && i < w->n; i++) {
        json_t *a = json_array_get(h, i), *b = json_array_get(p, i);
        ok = json_is_string(a) && json_is_string(b) &&
             net_hex_decode(w->hostpk[i], 33, json_string_value(a), json_string_length(a)) &&
             net_hex_decode(w->pubshares[i], 33, json_string_value(b), json_string_length(b));
    }
    for (size_t k = 0; ok && k < json_array_size(d); k++) {
        json_t *e = json_array_get(d, k);
        json_int_t i = json_integer_value(json_object_get(e, "index"));
        ok = i >= 0 && i < (json_int_t)w->n && jget(e, "hostseckey", w->seckey[i], 32) &&
             jget(e, "secshare", w->secshare[i], 32);
        if (ok) w->is_dev[i] = 1;
    }
    json_decref(j);
    w->ready = ok;
    return ok;
}

/* An enrollment token as the operator got it: hex that fits in cap with its NUL. */
static int token_ok(const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (!n || n >= cap) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) return 0;
    return 1;
}

static int cmd_dkg(const char *url, int argc, char **argv)
{
    if (argc && !strcmp(argv[0], "join")) return cli_dkg_join(url, json_out, argc - 1, argv + 1);
    long t = 0, devices = 0;
    const char *out = NULL, *token = NULL, *admin_key = NULL;
    const char *keys[DEV_MAX_N];
    int nkeys = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--admin-key") && i + 1 < argc)
            admin_key = argv[++i];
        else if (!strcmp(argv[i], "--t") && i + 1 < argc)
            t = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--devices") && i + 1 < argc)
            devices = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--key") && i + 1 < argc && nkeys < DEV_MAX_N - 1)
            keys[nkeys++] = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--token") && i + 1 < argc)
            token = argv[++i];
        else
            die(2, "dkg: unknown argument (see --help)");
    }
    if (!devices) devices = nkeys;
    if (devices < 1 || devices > DEV_MAX_N - 1 || (nkeys && nkeys != devices))
        die(2, "dkg: need --devices D (1..31) or one --key FILE per device");
    long n = devices + 1;
    if (t < 1 || t > n) die(2, "dkg: --t must be in 1..devices+1");
    dev_user u;
    memset(&u, 0, sizeof u);
    if (token && !token_ok(token, sizeof u.w.token))
        die(2, "dkg: --token must be hex (at most 79 digits)");
    uint8_t svc[33];
    if (!service_key(url, svc, NULL, 0)) die(1, "cannot reach the service (GET /v1/info)");
    dev_wallet_init(&u.w, (uint32_t)n, (uint32_t)t, 0, svc);
    if (token) snprintf(u.w.token, sizeof u.w.token, "%s", token);
    for (long i = 1; i < n; i++) {
        u.w.is_dev[i] = 1;
        if (nkeys) {
            if (!read_key(keys[i - 1], u.w.seckey[i], u.w.hostpk[i]))
                die(1, "cannot read a device key file (hex secret key expected)");
        } else if (!dev_keygen(u.w.seckey[i], u.w.hostpk[i])) {
            die(1, "key generation failed");
        }
    }
    if (admin_key) {
        /* Demo convenience: the operator's key mints a token for exactly
         * these devices, as `admin enroll` would. */
        uint8_t ask[32], apk[33], keys33[DEV_MAX_N][33];
        char terr[300];
        if (!admin_read_key(admin_key, ask, apk)) die(1, "cannot read the admin key file");
        for (long i = 1; i < n; i++)
            memcpy(keys33[i - 1], u.w.hostpk[i], 33);
        int ok = admin_mint_token(url, ask, (const uint8_t(*)[33])keys33, (size_t)(n - 1),
                                  u.w.token, terr, sizeof terr);
        cx_wipe(ask, sizeof ask);
        if (!ok) die(1, terr);
    }
    u.hc = http_new(url, 64);
    u.done = on_done;
    dev_dkg(&u);
    http_run(u.hc, NULL, NULL);
    http_free(u.hc);
    if (!op_ok) die(1, op_msg);
    json_t *wj = wallet_json(&u.w, url);
    if (out) {
        char *s = json_dumps(wj, JSON_INDENT(2));
        if (!s || !write_private(out, s)) die(1, "cannot write the wallet file");
        free(s);
    }
    char wid[65], tpk[67];
    net_hex_encode(wid, u.w.wallet_id, 32);
    net_hex_encode(tpk, u.w.thresh_pk, 33);
    if (json_out) {
        json_t *o = json_pack("{s:b,s:s,s:s,s:i,s:i}", "ok", 1, "wallet_id", wid, "thresh_pubkey",
                              tpk, "t", (int)t, "n", (int)n);
        if (out) json_object_set_new(o, "wallet_file", json_string(out));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("DKG complete: %ld-of-%ld wallet (service is participant 0)\n"
               "wallet id:        %s\nthreshold pubkey: %s\n",
               t, n, wid, tpk);
        if (out) printf("wallet file:      %s (mode 0600: holds device secrets)\n", out);
    }
    json_decref(wj);
    cx_wipe(&u.w, sizeof u.w);
    return 0;
}

static int cmd_sign(const char *url, int argc, char **argv)
{
    if (argc && !strcmp(argv[0], "join")) return cli_sign_join(url, json_out, argc - 1, argv + 1);
    const char *wallet = NULL, *msgh = NULL, *mr = NULL, *signers = NULL;
    int taproot = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--wallet") && i + 1 < argc)
            wallet = argv[++i];
        else if (!strcmp(argv[i], "--msg") && i + 1 < argc)
            msgh = argv[++i];
        else if (!strcmp(argv[i], "--taproot"))
            taproot = 1;
        else if (!strcmp(argv[i], "--merkle-root") && i + 1 < argc)
            mr = argv[++i];
        else if (!strcmp(argv[i], "--signers") && i + 1 < argc)
            signers = argv[++i];
        else
            die(2, "sign: unknown argument (see --help)");
    }
    if (!wallet || !msgh) die(2, "sign: need --wallet FILE and --msg HEX");
    dev_user u;
    memset(&u, 0, sizeof u);
    if (!wallet_load(wallet, &u.w)) die(1, "cannot read the wallet file");
    uint8_t msg[256], root[32];
    size_t ml = strlen(msgh) / 2;
    if (strlen(msgh) % 2 || ml > sizeof msg || !net_hex_decode(msg, ml, msgh, strlen(msgh)))
        die(2, "sign: --msg must be hex, at most 256 bytes");
    if (mr && (!taproot || !net_hex_decode(root, 32, mr, strlen(mr))))
        die(2, "sign: --merkle-root needs --taproot and 32 bytes of hex");
    uint32_t ids[DEV_MAX_N];
    size_t count = 0;
    if (signers) {
        char *dup = strdup(signers), *save = NULL;
        for (char *tok = strtok_r(dup, ",", &save); tok && count < DEV_MAX_N;
             tok = strtok_r(NULL, ",", &save))
            ids[count++] = (uint32_t)strtoul(tok, NULL, 10);
        free(dup);
    } else {
        /* The service and the first t-1 devices. */
        ids[count++] = u.w.svc;
        for (uint32_t i = 0; i < u.w.n && count < u.w.t; i++)
            if (u.w.is_dev[i]) ids[count++] = i;
    }
    /* Ascending order, as every device must post the same list. */
    for (size_t a = 0; a < count; a++)
        for (size_t b = a + 1; b < count; b++)
            if (ids[b] < ids[a]) {
                uint32_t x = ids[a];
                ids[a] = ids[b];
                ids[b] = x;
            }
    u.hc = http_new(url, 64);
    u.done = on_done;
    dev_sign(&u, ids, count, msg, ml, taproot, mr ? root : NULL);
    http_run(u.hc, NULL, NULL);
    http_free(u.hc);
    if (!op_ok) die(1, op_msg);
    char sig[129], key[65];
    net_hex_encode(sig, u.sig, 64);
    net_hex_encode(key, u.verify_xonly, 32);
    if (json_out)
        printf("{\"ok\":true,\"signature\":\"%s\",\"pubkey_xonly\":\"%s\",\"verified\":true}\n",
               sig, key);
    else
        printf("signature: %s\nverifies under %s key %s (checked locally with libsecp256k1)\n", sig,
               taproot ? "Taproot output" : "threshold", key);
    dev_user_release(&u);
    cx_wipe(&u.w, sizeof u.w);
    return 0;
}

/* ---- recovery, restore, admin: one signed request each -------------------- */

/* One request signed with sk; body (may be NULL) is consumed. Dies with the
 * service's error unless it answered 200. Ownership: the returned JSON is
 * the caller's. */
static json_t *signed_call(const char *url, const char *method, const char *path, json_t *body,
                           const uint8_t sk[32])
{
    struct {
        long code;
        json_t *j;
        char err[256];
    } r;
    r.code = admin_call(url, method, path, body, sk, &r.j, r.err, sizeof r.err);
    if (r.code != 200) {
        char msg[512];
        json_t *e = json_object_get(r.j, "error");
        if (e)
            snprintf(msg, sizeof msg, "HTTP %ld %s: %s", r.code,
                     json_string_value(json_object_get(e, "code")) ?: "?",
                     json_string_value(json_object_get(e, "message")) ?: "");
        else
            snprintf(msg, sizeof msg, "HTTP %ld: %s", r.code, *r.err ? r.err : "no error body");
        json_decref(r.j);
        die(1, msg);
    }
    return r.j;
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s ? s : "{}");
    free(s);
}

/* The signing key of a device: --key FILE, else the wallet file's first device. */
static void device_key(const char *keyf, const dev_wallet *w, uint8_t sk[32])
{
    uint8_t pk[33];
    if (keyf) {
        if (!read_key(keyf, sk, pk)) die(1, "cannot read the key file (hex secret key expected)");
        return;
    }
    for (uint32_t i = 0; w && i < w->n; i++)
        if (w->is_dev[i]) {
            memcpy(sk, w->seckey[i], 32);
            return;
        }
    die(2, "need --key FILE or a wallet file with a device");
}

static int cmd_recovery(const char *url, int argc, char **argv)
{
    const char *wallet = NULL, *keyf = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--wallet") && i + 1 < argc)
            wallet = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else
            die(2, "recovery: unknown argument (see --help)");
    }
    if (!wallet) die(2, "recovery: need --wallet FILE");
    static dev_wallet w;
    if (!wallet_load(wallet, &w)) die(1, "cannot read the wallet file");
    uint8_t sk[32];
    device_key(keyf, &w, sk);
    char wid[65], path[128];
    net_hex_encode(wid, w.wallet_id, 32);
    snprintf(path, sizeof path, "/v1/wallets/%s/recovery", wid);
    json_t *j = signed_call(url, "GET", path, NULL, sk);
    cx_wipe(sk, sizeof sk);
    const char *rec = json_string_value(json_object_get(j, "recovery"));
    if (!rec || !*rec) die(1, "the service's reply has no recovery data");
    if (out) {
        char *line = malloc(strlen(rec) + 2);
        sprintf(line, "%s\n", rec);
        if (!write_private(out, line)) die(1, "cannot write the recovery file");
        free(line);
    }
    if (json_out) {
        json_t *o = json_pack("{s:b,s:s,s:I}", "ok", 1, "wallet_id", wid, "recovery_len",
                              (json_int_t)(strlen(rec) / 2));
        if (out)
            json_object_set_new(o, "file", json_string(out));
        else
            json_object_set_new(o, "recovery", json_string(rec));
        print_json(o);
        json_decref(o);
    } else if (out) {
        printf("recovery data (%zu bytes) written to %s\n", strlen(rec) / 2, out);
    } else {
        printf("%s\n", rec);
    }
    json_decref(j);
    cx_wipe(&w, sizeof w);
    return 0;
}

/* The wallet id (ChillDKG params_hash) of recovery data: its params are t
 * (u32) and the host keys after the t sum commitments (4 + 33t + 162n bytes). */
static int recovery_wallet_id(const uint8_t *rec, size_t len, uint8_t id[32])
{
    if (len < 4) return 0;
    uint32_t t = (uint32_t)rec[0] << 24 | (uint32_t)rec[1] << 16 | (uint32_t)rec[2] << 8 | rec[3];
    if (t < 1 || t > CG_DKG_MAX_N || len <= 4 + 33u * t || (len - 4 - 33u * t) % 162) return 0;
    size_t n = (len - 4 - 33u * t) / 162;
    if (n < t || n > CG_DKG_MAX_N) return 0;
    cg_dkg_params p;
    memset(&p, 0, sizeof p);
    p.n = (uint32_t)n;
    p.t = t;
    memcpy(p.hostpubkeys, rec + 4 + 33u * t, 33 * n);
    cg_dkg_error e;
    return cg_dkg_params_hash(id, &p, &e) == RT_OK;
}

static int cmd_restore(const char *url, int argc, char **argv)
{
    const char *wallet = NULL, *keyf = NULL, *recf = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--wallet") && i + 1 < argc)
            wallet = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--recovery-file") && i + 1 < argc)
            recf = argv[++i];
        else
            die(2, "restore: unknown argument (see --help)");
    }
    if (!recf || (!wallet && !keyf))
        die(2, "restore: need --recovery-file FILE and --wallet FILE or --key FILE");
    static dev_wallet w;
    if (wallet && !wallet_load(wallet, &w)) die(1, "cannot read the wallet file");
    FILE *f = fopen(recf, "r");
    if (!f) die(1, "cannot read the recovery file");
    static char hex[2 * 8192 + 4];
    size_t hl = fread(hex, 1, sizeof hex - 1, f);
    fclose(f);
    while (hl && (hex[hl - 1] == '\n' || hex[hl - 1] == '\r' || hex[hl - 1] == ' '))
        hl--;
    hex[hl] = 0;
    static uint8_t rec[8192];
    if (hl % 2 || hl / 2 > sizeof rec || !net_hex_decode(rec, hl / 2, hex, hl))
        die(1, "the recovery file must hold the recovery data in hex");
    uint8_t id[32];
    if (!recovery_wallet_id(rec, hl / 2, id))
        die(1, "the recovery file holds no valid recovery data");
    if (wallet && memcmp(id, w.wallet_id, 32)) die(1, "the recovery data is not this wallet's");
    uint8_t sk[32];
    device_key(keyf, wallet ? &w : NULL, sk);
    char wid[65], path[128];
    net_hex_encode(wid, id, 32);
    snprintf(path, sizeof path, "/v1/wallets/%s/restore", wid);
    json_t *j = signed_call(url, "POST", path, json_pack("{s:s}", "recovery", hex), sk);
    cx_wipe(sk, sizeof sk);
    const char *tpk = json_string_value(json_object_get(j, "thresh_pubkey"));
    uint8_t tk[33];
    if (!tpk || !net_hex_decode(tk, 33, tpk, strlen(tpk))) die(1, "malformed reply");
    if (wallet && memcmp(tk, w.thresh_pk, 33))
        die(1, "the service restored another threshold key than the wallet file's");
    if (json_out) {
        json_t *o = json_pack("{s:b,s:s,s:s}", "ok", 1, "wallet_id", wid, "thresh_pubkey", tpk);
        print_json(o);
        json_decref(o);
    } else {
        printf("restored wallet %s\nthreshold pubkey: %s\n", wid, tpk);
    }
    json_decref(j);
    cx_wipe(&w, sizeof w);
    return 0;
}

static int cmd_admin(const char *url, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "retire")) die(2, "admin: the only command is retire");
    const char *keyf = NULL, *wallet = NULL;
    long long grace = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--admin-key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--wallet") && i + 1 < argc)
            wallet = argv[++i];
        else if (!strcmp(argv[i], "--grace-s") && i + 1 < argc)
            grace = strtoll(argv[++i], NULL, 10);
        else
            die(2, "admin retire: unknown argument (see --help)");
    }
    if (!keyf || !wallet) die(2, "admin retire: need --admin-key FILE and --wallet ID|FILE");
    uint8_t sk[32], pk[33], id[32];
    if (!read_key(keyf, sk, pk)) die(1, "cannot read the admin key file (hex secret key expected)");
    if (!(strlen(wallet) == 64 && net_hex_decode(id, 32, wallet, 64))) {
        static dev_wallet w;
        if (!wallet_load(wallet, &w)) die(1, "--wallet: neither a wallet id nor a wallet file");
        memcpy(id, w.wallet_id, 32);
        cx_wipe(&w, sizeof w);
    }
    char wid[65], path[128];
    net_hex_encode(wid, id, 32);
    snprintf(path, sizeof path, "/v1/admin/wallets/%s/retire", wid);
    json_t *body = json_object();
    if (grace >= 0) json_object_set_new(body, "grace_s", json_integer(grace));
    json_t *j = signed_call(url, "POST", path, body, sk);
    cx_wipe(sk, sizeof sk);
    json_object_set_new(j, "ok", json_true());
    if (json_out) {
        print_json(j);
    } else {
        printf("wallet %s retired at %lld ms; its share is wiped after %lld ms (unix time)\n", wid,
               (long long)json_integer_value(json_object_get(j, "retired_at_ms")),
               (long long)json_integer_value(json_object_get(j, "wipe_after_ms")));
    }
    json_decref(j);
    return 0;
}

/* ---- raw: one hand-made request, for operators and protocol tests --------- */

static void on_raw(void *arg, long code, json_t *resp, const char *err)
{
    (void)arg;
    char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    printf("%ld %s\n", code, s ? s : err ? err : "-");
    free(s);
}

typedef struct raw_auth {
    uint8_t sk[32], pk[33];
    const char *method, *path, *body, *nonceh;
    size_t blen;
    long long ts_off;
    int bad_sig;
} raw_auth;

/* Signs the request into the Authorization value auth (NET_AUTH_HDR_MAX). */
static void raw_sign(const raw_auth *a, char *auth)
{
    uint8_t nonce[16], msg[32], sig[64], aux[32];
    if (a->nonceh) {
        if (!net_hex_decode(nonce, 16, a->nonceh, strlen(a->nonceh)))
            die(2, "raw: --nonce: 16 bytes hex");
    } else {
        cx_random(nonce, 16);
    }
    uint64_t ts = (uint64_t)((long long)net_unix_ms_cli() + a->ts_off);
    net_auth_msg(msg, a->method, a->path, ts, nonce, (const uint8_t *)a->body, a->blen);
    cx_random(aux, 32);
    if (!cx_bip340_sign(sig, msg, 32, a->sk, aux)) die(1, "raw: signing failed");
    if (a->bad_sig) sig[63] ^= 1;
    char pkh[67], nh[33], sh[129];
    net_hex_encode(pkh, a->pk, 33);
    net_hex_encode(nh, nonce, 16);
    net_hex_encode(sh, sig, 64);
    snprintf(auth, NET_AUTH_HDR_MAX, "Cosigner-BIP340 pk=%s, ts=%llu, nonce=%s, sig=%s", pkh,
             (unsigned long long)ts, nh, sh);
}

static int cmd_raw(const char *url, int argc, char **argv)
{
    if (argc < 2) die(2, "raw: need METHOD PATH");
    raw_auth ra = {.method = argv[0], .path = argv[1]};
    const char *keyf = NULL;
    int repeat = 1, fresh = 0, print_auth = 0;
    char *fbody = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--body") && i + 1 < argc)
            ra.body = argv[++i], ra.blen = strlen(ra.body);
        else if (!strcmp(argv[i], "--body-file") && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "rb");
            if (!f) die(2, "raw: cannot read --body-file");
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            fbody = malloc((size_t)n + 1);
            ra.blen = fread(fbody, 1, (size_t)n, f);
            fclose(f);
            ra.body = fbody;
        } else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            keyf = argv[++i];
        else if (!strcmp(argv[i], "--ts-offset-ms") && i + 1 < argc)
            ra.ts_off = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--nonce") && i + 1 < argc)
            ra.nonceh = argv[++i];
        else if (!strcmp(argv[i], "--bad-sig"))
            ra.bad_sig = 1;
        else if (!strcmp(argv[i], "--print-auth"))
            print_auth = 1;
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fresh-nonce"))
            fresh = 1;
        else
            die(2, "raw: unknown argument");
    }
    if (fresh && (!keyf || ra.nonceh)) die(2, "raw: --fresh-nonce needs --key and no --nonce");
    char auth[NET_AUTH_HDR_MAX];
    if (keyf) {
        if (!read_key(keyf, ra.sk, ra.pk)) die(1, "raw: cannot read the key file");
        raw_sign(&ra, auth);
    }
    if (print_auth) {
        /* For tools that need the whole response (headers too): sign here,
         * send with them. */
        if (!keyf) die(2, "raw: --print-auth needs --key");
        printf("%s\n", auth);
        cx_wipe(ra.sk, sizeof ra.sk);
        free(fbody);
        return 0;
    }
    http_client *c = http_new(url, 4);
    for (int k = 0; k < repeat; k++) {
        if (fresh && k) raw_sign(&ra, auth);
        http_request_raw(c, ra.method, ra.path, ra.body, ra.blen, keyf ? auth : NULL, on_raw, NULL);
        http_run(c, NULL, NULL);
    }
    http_free(c);
    cx_wipe(ra.sk, sizeof ra.sk);
    free(fbody);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = getenv("COSIGNER_URL");
    if (!url) url = "http://127.0.0.1:7074";
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            json_out = 1;
        else if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("cosigner-cli %s\n", CG_VERSION);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    /* --json may also follow the command. */
    for (int k = i; k < argc; k++)
        if (!strcmp(argv[k], "--json")) {
            json_out = 1;
            for (int m = k; m + 1 < argc; m++)
                argv[m] = argv[m + 1];
            argc--;
            k--;
        }
    if (!cx_init()) die(1, "crypto init failed");
    const char *cmd = argv[i];
    int sub_argc = argc - i - 1;
    char **sub_argv = argv + i + 1;
    if (!strcmp(cmd, "keygen")) return cmd_keygen(sub_argc, sub_argv);
    if (!strcmp(cmd, "info")) return cmd_info(url);
    if (!strcmp(cmd, "dkg")) return cmd_dkg(url, sub_argc, sub_argv);
    if (!strcmp(cmd, "sign")) return cmd_sign(url, sub_argc, sub_argv);
    if (!strcmp(cmd, "raw")) return cmd_raw(url, sub_argc, sub_argv);
    if (!strcmp(cmd, "recover")) return cli_recover(url, json_out, sub_argc, sub_argv);
    if (!strcmp(cmd, "recovery")) return cmd_recovery(url, sub_argc, sub_argv);
    if (!strcmp(cmd, "restore")) return cmd_restore(url, sub_argc, sub_argv);
    if (!strcmp(cmd, "admin"))
        return sub_argc && !strcmp(sub_argv[0], "retire") ? cmd_admin(url, sub_argc, sub_argv)
                                                          : cli_admin(url, sub_argc, sub_argv);
    usage(stderr);
    return 2;
}
