/*
 * chaos.c — whole-system fault injection under load, crash recovery and the
 * service's invariants, against the real cosignerd over loopback.
 *
 * The harness starts the daemon (a fault-injection build, fault_injection
 * enabled by config, millisecond idle eviction) on 127.0.0.1 and a random
 * port, and drives many simulated wallets with the native ChillDKG / BIP 445
 * device code over the wire contract (cli/http.c's libcurl client):
 *
 *   clean wallets   DKG once, then signing sessions back to back, with idle
 *                   gaps (so they are evicted and re-activated all the time).
 *                   Nothing is ever injected into them: ANY error they see
 *                   within one daemon lifetime is a violation.
 *   faulty wallets  the same, plus at random: guest faults of every kind the
 *                   fault route offers (trap, return, spin = runaway, oom,
 *                   snapshot) and actor-level faults, also while a
 *                   rendezvous is parked; mailbox floods; clients that
 *                   disconnect while parked; storage failures (fsync EIO via
 *                   chaos_preload.so) during their DKG commit.
 *
 * and the daemon itself is killed with SIGKILL at the end of each
 * "generation" and restarted on the same data directory.
 *
 * Invariants checked (each violation is printed and counted; exit 1 if any):
 *   - every request gets exactly one response, before its deadline, with a
 *     documented code whose JSON name matches the HTTP status;
 *   - clean wallets see no error (operations cut by a crash excepted, and a
 *     session evicted with its idle actor between two rounds: see op_done);
 *   - every acknowledged DKG survives every crash: after each restart each
 *     acknowledged wallet answers GET with the same threshold key, and at the
 *     end every one of them (faulty and re-keyed ones too) signs again;
 *   - every signature verifies (libsecp256k1 directly, taproot tweak computed
 *     with libsecp256k1 too) under the wallet's (tweaked) threshold key;
 *   - the service's public nonces (aggnonce minus the devices' nonces) never
 *     repeat;
 *   - no secret nonce is in the data directory: after each crash the store is
 *     opened with its master key, every record decrypted, and every 32-byte
 *     window k of the plaintext checked against the service nonces seen
 *     (k*G == R); the other files of the directory likewise (data.mdb itself
 *     is ciphertext and is covered by the decrypted scan);
 *   - the daemon's RSS stays bounded within each lifetime while idle
 *     eviction runs (late-lifetime peak vs. early-lifetime peak);
 *   - every fault kind was injected, and (with the preload) at least one
 *     armed storage failure reached its wallet as UNAVAILABLE.
 *
 * Cluster mode (--cluster N --pg-dsn DSN): N daemons on one PostgreSQL
 * database, every request sent to one of them at random (so most are
 * forwarded to the wallet's owner), and each "kill" a kill -9 of one node
 * at random, restarted on its data directory. The same invariants hold,
 * with nonces merged across the nodes (the harness sees every answer) and
 * the scan reading the records from the database; one allowance: an
 * operation started within lease_ttl + 1.5 s of a kill may fail with
 * UNAVAILABLE (the wallet's lease was still the dead node's; API.md,
 * Clusters), counted as "failover". The RSS bound is checked on node 0.
 *
 * Usage: chaos --daemon PATH [--preload PATH] [--seconds S] [--kills K]
 *              [--clean N] [--faulty M] [--seed X] [--idle-ms MS] [--min-faults N]
 *              [--workdir DIR] [--cluster N --pg-dsn DSN] [--verbose]
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cg_dkg.h"
#include "admin.h"
#include "cg_frost.h"
#include "cx.h"
#include "http.h"
#include "net.h"
#include "store.h"

/* ---- configuration ------------------------------------------------------ */

static struct {
    const char *daemon, *preload, *workdir, *pg_dsn;
    double seconds;
    int kills, clean, faulty, verbose, cluster;
    unsigned seed;
    uint64_t rendezvous_ms, idle_ms, min_faults, lease_ttl_ms;
} O = {NULL, NULL, NULL, NULL, 150, 5, 8, 12, 0, 0, 0, 3000, 150, 0, 1000};

/* ---- counters ------------------------------------------------------------ */

enum fault_kind {
    F_TRAP,
    F_RETURN,
    F_SPIN,
    F_OOM,
    F_SNAPSHOT,
    F_ACTOR,
    F_PARKED, /* any of the above while a rendezvous of the wallet is parked */
    F_FLOOD,
    F_DISCONNECT,
    F_STORE,
    F_KILL,
    F_COUNT_
};
static const char *const fault_names[F_COUNT_] = {"guest trap",
                                                  "guest error return",
                                                  "runaway guest (spin)",
                                                  "guest memory exhaustion",
                                                  "snapshot fault",
                                                  "actor-level fault",
                                                  "  (of which during a parked rendezvous)",
                                                  "mailbox flood",
                                                  "disconnect mid-rendezvous",
                                                  "store write failure (fsync EIO)",
                                                  "kill -9 + restart"};
static const char *const fault_route_kind[] = {"trap", "return",   "spin",
                                               "oom",  "snapshot", "actor"};

static struct {
    uint64_t faults[F_COUNT_];
    uint64_t requests, responses, transport_cut, late;
    uint64_t by_code[32];
    uint64_t dkg_ok, sign_ok, sign_verified, ops_failed_faulty, ops_cut, mint_failures;
    uint64_t flood_429, nonces, scans, scanned_windows, violations;
    uint64_t store_fail_seen, evicted_sessions, evicted_clean, storms, quarantined_seen;
    uint64_t failover_ops, carried_over;
    uint64_t metrics[16];
} C;

/* API.md's error table, exactly: anything else is a violation. 409 is
 * ABORTED (a round 2 that finds its session gone, see r2_aborted) or
 * ALREADY_EXISTS (a DKG for a wallet that exists); 412 FAILED_PRECONDITION
 * is a round posted before the previous one completed. */
static const char *const code_names[] = {"OK",
                                         "INVALID_ARGUMENT",
                                         "UNAUTHENTICATED",
                                         "PERMISSION_DENIED",
                                         "NOT_FOUND",
                                         "ABORTED",
                                         "PAYLOAD_TOO_LARGE",
                                         "RESOURCE_EXHAUSTED",
                                         "INTERNAL",
                                         "UNAVAILABLE",
                                         "DEADLINE_EXCEEDED",
                                         "DATA_LOSS",
                                         "ALREADY_EXISTS",
                                         "FAILED_PRECONDITION"};
static const long code_http[] = {200, 400, 401, 403, 404, 409, 413,
                                 429, 500, 503, 504, 500, 409, 412};
#define N_CODES (sizeof code_names / sizeof code_names[0])
#define CODE_UNDOCUMENTED N_CODES
#define CODE_TRANSPORT (N_CODES + 1)

static void violation(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    C.violations++;
}

static void logv(const char *fmt, ...)
{
    if (!O.verbose) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static unsigned rnd(unsigned n)
{
    return n ? (unsigned)(rand() % (int)n) : 0;
}

/* ---- libsecp256k1: independent checks ------------------------------------ */

static secp256k1_context *SECP;

/* Service nonces seen: compressed points (R1 and R2 halves) for repeats,
 * x-coordinates for the secret-nonce scan. Open addressing, grows. */
typedef struct pset {
    uint8_t (*v)[33];
    size_t cap, len;
} pset;
static pset NONCES;

static uint64_t h64(const uint8_t *p)
{
    uint64_t h;
    memcpy(&h, p + 1, 8);
    return h;
}

static int pset_add(pset *s, const uint8_t p[33]) /* 0 if already present */
{
    if (2 * (s->len + 1) > s->cap) {
        pset n = {calloc(s->cap ? 2 * s->cap : 4096, 33), s->cap ? 2 * s->cap : 4096, 0};
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i][0]) pset_add(&n, s->v[i]);
        free(s->v);
        *s = n;
    }
    for (size_t i = h64(p) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->v[i][0]) {
            memcpy(s->v[i], p, 33);
            s->len++;
            return 1;
        }
        if (!memcmp(s->v[i], p, 33)) return 0;
    }
}

/* Whether some recorded point has x-coordinate x (either parity). */
static int pset_has_x(const pset *s, const uint8_t x[32])
{
    if (!s->cap) return 0;
    uint8_t p[33];
    p[0] = 2;
    memcpy(p + 1, x, 32);
    for (int par = 2; par <= 3; par++) {
        p[0] = (uint8_t)par;
        for (size_t i = h64(p) & (s->cap - 1); s->v[i][0]; i = (i + 1) & (s->cap - 1))
            if (!memcmp(s->v[i], p, 33)) return 1;
    }
    return 0;
}

/* out = a - sum(b[i]) for 33-byte compressed points; 0 on infinity/bad input. */
static int point_sub(uint8_t out[33], const uint8_t a[33], const uint8_t (*b)[66], size_t nb,
                     size_t half)
{
    secp256k1_pubkey pa, pb[4];
    const secp256k1_pubkey *all[5];
    if (nb > 4 || !secp256k1_ec_pubkey_parse(SECP, &pa, a, 33)) return 0;
    all[0] = &pa;
    for (size_t i = 0; i < nb; i++) {
        if (!secp256k1_ec_pubkey_parse(SECP, &pb[i], b[i] + 33 * half, 33) ||
            !secp256k1_ec_pubkey_negate(SECP, &pb[i]))
            return 0;
        all[i + 1] = &pb[i];
    }
    secp256k1_pubkey r;
    if (!secp256k1_ec_pubkey_combine(SECP, &r, all, nb + 1)) return 0;
    size_t len = 33;
    return secp256k1_ec_pubkey_serialize(SECP, out, &len, &r, SECP256K1_EC_COMPRESSED);
}

/* The x-only key a signature must verify under: the threshold key, or its
 * BIP 341 key-path tweak (hashTapTweak(xonly(P)), no script tree). */
static int verify_key(uint8_t xonly[32], const uint8_t thresh[33], int taproot, uint8_t tweak[32])
{
    secp256k1_pubkey P;
    secp256k1_xonly_pubkey xp;
    if (!secp256k1_ec_pubkey_parse(SECP, &P, thresh, 33) ||
        !secp256k1_xonly_pubkey_from_pubkey(SECP, &xp, NULL, &P))
        return 0;
    uint8_t px[32];
    secp256k1_xonly_pubkey_serialize(SECP, px, &xp);
    if (!taproot) {
        memcpy(xonly, px, 32);
        return 1;
    }
    static const uint8_t tag[] = "TapTweak";
    if (!secp256k1_tagged_sha256(SECP, tweak, tag, sizeof tag - 1, px, 32)) return 0;
    secp256k1_pubkey Q;
    secp256k1_xonly_pubkey xq;
    if (!secp256k1_xonly_pubkey_tweak_add(SECP, &Q, &xp, tweak) ||
        !secp256k1_xonly_pubkey_from_pubkey(SECP, &xq, NULL, &Q))
        return 0;
    secp256k1_xonly_pubkey_serialize(SECP, xonly, &xq);
    return 1;
}

static int bip340_verify(const uint8_t sig[64], const uint8_t msg[32], const uint8_t xonly[32])
{
    secp256k1_xonly_pubkey pk;
    return secp256k1_xonly_pubkey_parse(SECP, &pk, xonly) &&
           secp256k1_schnorrsig_verify(SECP, sig, msg, 32, &pk);
}

/* ---- the daemon ---------------------------------------------------------- */

/* One daemon (a node of the cluster, or the only one). */
#define MAX_NODES 5
static struct {
    pid_t pid;
    uint16_t port;
    char data[512], log[512];
} ND[MAX_NODES];
static int NNODES = 1;
static int CUR; /* the node raw_http talks to */

static struct {
    char url[64 * MAX_NODES], workdir[400];
    uint8_t hostpk[33];
    int gen;
    double gen_start, kill_at;
    /* RSS (KiB) samples of the current lifetime: early and late peaks. */
    long rss_early, rss_late, rss_first;
} D;

static int raw_http(const char *method, const char *path, const char *auth, const char *body,
                    char *resp, size_t cap, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ND[CUR].port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    char head[1024];
    size_t bl = body ? strlen(body) : 0;
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      method, path, auth ? "Authorization: " : "", auth ? auth : "",
                      auth ? "\r\n" : "", bl);
    if (send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl ||
        (bl && send(fd, body, bl, MSG_NOSIGNAL) != (ssize_t)bl)) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = recv(fd, resp + len, cap - 1 - len, 0)) > 0)
        len += (size_t)n;
    close(fd);
    resp[len] = 0;
    int code = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &code) != 1) return -1;
    return code;
}

static const char *http_body(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &l)) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void daemon_start(int node)
{
    char port[16], rdv[32], idle[32], id[16], ttl[24], mk[600];
    CUR = node;
    snprintf(port, sizeof port, "127.0.0.1:%u", ND[node].port);
    snprintf(id, sizeof id, "node%d", node);
    snprintf(ttl, sizeof ttl, "%" PRIu64, O.lease_ttl_ms);
    snprintf(mk, sizeof mk, "%s/master.key", D.workdir);
    snprintf(rdv, sizeof rdv, "%" PRIu64, O.rendezvous_ms);
    snprintf(idle, sizeof idle, "%" PRIu64, O.idle_ms);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        int fd = open(ND[node].log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        if (O.preload) {
            setenv("LD_PRELOAD", O.preload, 1);
            /* The sanitizer runtime wants to be first; the shim only wraps fsync. */
            const char *a = getenv("ASAN_OPTIONS");
            char buf[1024];
            snprintf(buf, sizeof buf, "%s%sverify_asan_link_order=0:quarantine_size_mb=32",
                     a ? a : "", a ? ":" : "");
            setenv("ASAN_OPTIONS", buf, 1);
        }
        if (O.cluster)
            execl(O.daemon, O.daemon, "--listen", port, "--data-dir", ND[node].data,
                  "--fault-injection", "true", "--idle-threshold-ms", idle, "--evict-quantum-ms",
                  "20", "--tick-interval-ms", "250", "--rendezvous-deadline-ms", rdv,
                  "--cpu-budget-ms", "150", "--mailbox-size", "16", "--restart-max", "4",
                  "--restart-window-ms", "1000", "--quarantine-base-ms", "100", "--workers", "2",
                  "--http-threads", "4", "--drain-timeout-ms", "2000", "--store-backend",
                  "postgres", "--pg-dsn", O.pg_dsn, "--node-id", id, "--lease-ttl-ms", ttl,
                  "--master-key", mk, (char *)NULL);
        else
            execl(O.daemon, O.daemon, "--listen", port, "--data-dir", ND[node].data,
                  "--fault-injection", "true", "--idle-threshold-ms", idle, "--evict-quantum-ms",
                  "20", "--tick-interval-ms", "250", "--rendezvous-deadline-ms", rdv,
                  "--cpu-budget-ms", "150", "--mailbox-size", "16", "--restart-max", "4",
                  "--restart-window-ms", "1000", "--quarantine-base-ms", "100", "--workers", "2",
                  "--http-threads", "4", "--drain-timeout-ms", "2000", (char *)NULL);
        _exit(127);
    }
    ND[node].pid = pid;
    char resp[4096];
    double t0 = now_ms();
    for (;;) {
        if (raw_http("GET", "/readyz", NULL, NULL, resp, sizeof resp, 2) == 200) break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "chaos: the daemon exited at start (see %s)\n", ND[node].log);
            exit(2);
        }
        if (now_ms() - t0 > 60000) {
            fprintf(stderr, "chaos: the daemon did not become ready in 60 s (see %s)\n",
                    ND[node].log);
            kill(pid, SIGKILL);
            exit(2);
        }
        usleep(20000);
    }
    if (raw_http("GET", "/v1/info", NULL, NULL, resp, sizeof resp, 5) != 200) {
        fprintf(stderr, "chaos: GET /v1/info failed\n");
        exit(2);
    }
    json_t *j = json_loads(http_body(resp), 0, NULL);
    const char *hpk = json_string_value(json_object_get(j, "hostpubkey"));
    uint8_t pk[33];
    if (!hpk || !net_hex_decode(pk, 33, hpk, strlen(hpk))) {
        fprintf(stderr, "chaos: bad /v1/info\n");
        exit(2);
    }
    json_decref(j);
    if (D.gen && memcmp(pk, D.hostpk, 33))
        violation("the service host key changed across a restart");
    memcpy(D.hostpk, pk, 33);
    D.gen_start = now_ms();
    D.rss_early = D.rss_late = D.rss_first = 0;
}

static long daemon_rss_kib(void)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)ND[0].pid);
    FILE *f = fopen(p, "r");
    long kib = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
    fclose(f);
    return kib;
}

/* Prometheus counters of the lifetime that is ending (they restart at 0). */
static const char *const metric_names[] = {"cosignerd_actor_evictions_total",
                                           "cosignerd_actor_restarts_total",
                                           "cosignerd_actor_quarantines_total",
                                           "cosignerd_handler_faults_total{kind=\"timeout\"}",
                                           "cosignerd_handler_faults_total{kind=\"panic\"}",
                                           "cosignerd_mailbox_drops_total{kind=\"client\"}",
                                           "cosignerd_store_commit_failures_total",
                                           "cosignerd_actor_activations_total",
                                           "cosignerd_actor_commit_failures_total"};
#define N_METRICS (sizeof metric_names / sizeof metric_names[0])

static void scrape_metrics(int node)
{
    static char resp[1 << 18];
    CUR = node;
    if (raw_http("GET", "/metrics", NULL, NULL, resp, sizeof resp, 5) != 200) {
        violation("GET /metrics of node %d failed", node);
        return;
    }
    for (size_t i = 0; i < N_METRICS; i++) {
        char key[128];
        snprintf(key, sizeof key, "\n%s ", metric_names[i]);
        const char *p = strstr(resp, key);
        if (p) C.metrics[i] += strtoull(p + strlen(key), NULL, 10);
    }
}

/* ---- the secret-nonce scan of the data directory ------------------------- */

static uint64_t scan_buf(const uint8_t *b, size_t len, const char *what)
{
    uint64_t hits = 0;
    for (size_t off = 0; off + 32 <= len; off++) {
        secp256k1_pubkey P;
        uint8_t pt[33];
        size_t pl = 33;
        C.scanned_windows++;
        if (!secp256k1_ec_pubkey_create(SECP, &P, b + off)) continue;
        secp256k1_ec_pubkey_serialize(SECP, pt, &pl, &P, SECP256K1_EC_COMPRESSED);
        if (pset_has_x(&NONCES, pt + 1)) {
            violation("a service secret nonce is in the data directory (%s, offset %zu)", what,
                      off);
            hits++;
        }
    }
    return hits;
}

static int scan_rec(void *arg, const rt_key *key, uint64_t version)
{
    (void)version;
    store *st = arg;
    uint8_t *rec = NULL;
    size_t len;
    uint64_t ver;
    rt_status s = store_get(st, key, &rec, &len, &ver);
    if (s != RT_OK) {
        violation("record of a wallet does not read back after a crash: %s", rt_status_name(s));
        return 0;
    }
    scan_buf(rec, len, "decrypted wallet record");
    cx_wipe(rec, len);
    free(rec);
    uint8_t *meta = NULL;
    if (store_get_meta(st, key->b, &meta, &len) == RT_OK) {
        scan_buf(meta, len, "wallet metadata");
        free(meta);
    }
    return 0;
}

/* The daemon is dead here: the store is opened by this process. */
static void scan_data_dir(void)
{
    C.scans++;
    store *st = NULL;
    char err[256], mk[600];
    snprintf(mk, sizeof mk, "%s/master.key", D.workdir);
    /* On a cluster the records are in the database: read them as a node
     * of its own would (it holds no lease and writes nothing). */
    store_options so = {.backend = STORE_POSTGRES,
                        .pg_dsn = O.pg_dsn,
                        .node_id = "chaos-scan",
                        .node_url = "http://127.0.0.1:1",
                        .key_path = mk};
    rt_status s = store_open(ND[0].data, O.cluster ? &so : NULL, &st, err, sizeof err);
    if (s != RT_OK) {
        violation("store does not open after a crash: %s (%s)", rt_status_name(s), err);
        return;
    }
    store_iterate(st, scan_rec, st);
    store_close(st);
    for (int i = 0; i < NNODES; i++) {
        DIR *d = opendir(ND[i].data);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.' || !strcmp(e->d_name, "data.mdb")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", ND[i].data, e->d_name);
            FILE *f = fopen(p, "rb");
            if (!f) continue;
            static uint8_t buf[1 << 20];
            size_t n = fread(buf, 1, sizeof buf, f);
            fclose(f);
            scan_buf(buf, n, e->d_name);
        }
        if (d) closedir(d);
    }
}

/* ---- wallets and operations ---------------------------------------------- */

#define MAXN 3
/* The most the daemon's coarse clock (CLOCK_MONOTONIC_COARSE, one kernel
 * tick) may trail the precise one it is compared with. */
#define COARSE_TICK_MS 10.0
enum { W_IDLE, W_BUSY };
enum { OP_NONE, OP_DKG, OP_SIGN, OP_CHECK };

typedef struct wallet {
    int no, clean, retired, final_done;
    uint32_t n, t, ndev; /* devices are 0..ndev-1, the service is n-1 */
    uint8_t sk[MAXN][32], pk[MAXN][33];
    char token[65]; /* the enrollment token minted for these device keys ("" = none yet) */
    /* acknowledged DKG */
    int acked;
    uint8_t wid[32];
    char wid_hex[65];
    uint8_t thresh[33];
    uint8_t secshare[MAXN][32], pubshare[MAXN][33];
    /* the operation in flight */
    int state, op, round, pending, failed, op_gen, expect_errors, final_op, store_fault;
    double op_t0; /* the operation started */
    int final_retries;
    int store_fail_seen; /* this operation got UNAVAILABLE while its store fault was armed */
    double r1_sent;      /* the last round-1 post was sent */
    double r2_first;     /* the first round-2 answer came back (0: none yet) */
    int storm_left;
    int r2_aborted;
    long fail_code;
    char fail_msg[200];
    double next_at;
    cg_dkg_pstate1 st1[MAXN];
    cg_dkg_pstate2 st2[MAXN];
    uint8_t cmsg1[CG_DKG_CMSG1_LEN(2, MAXN)];
    size_t cmsg1_len;
    uint8_t cmsg2[CG_DKG_CMSG2_LEN(MAXN)];
    size_t cmsg2_len;
    uint8_t thresh_reply[33];
    uint8_t sid[32], msg[32], tweak[32], xonly[32], agg[66], sig[64];
    uint32_t ids[MAXN];
    size_t count;
    int taproot, have_agg, have_sig;
    cg_frost_secnonce sn[MAXN];
    uint8_t pubnonce[MAXN][66];
} wallet;

static wallet **W;
static size_t NW, CAPW;
static http_client *HC;
static int PHASE; /* 0 run, 1 post-restart check, 2 final signing, 3 done */
static int CHECKS_PENDING;
static double STORE_FAULT_QUIET_UNTIL;

typedef struct req {
    wallet *w;
    int dev, gen, kind;
    double t0;
} req;
enum { RQ_OP, RQ_FAULT, RQ_FLOOD, RQ_CHECK, RQ_STORM_FAULT, RQ_STORM_GET };
static void on_resp(void *arg, long code, json_t *resp, const char *err);

static wallet *wallet_new(int clean)
{
    wallet *w = calloc(1, sizeof *w);
    if (!w) exit(2);
    w->no = (int)NW;
    w->clean = clean;
    if (NW == CAPW) {
        CAPW = CAPW ? 2 * CAPW : 64;
        W = realloc(W, CAPW * sizeof *W);
    }
    W[NW++] = w;
    return w;
}

static void wallet_keys(wallet *w)
{
    w->n = 2 + rnd(2); /* 2-of-2 (one device) or 2-of-3 (two devices) */
    w->t = 2;
    w->ndev = w->n - 1;
    for (uint32_t i = 0; i < w->ndev; i++)
        do
            cx_random(w->sk[i], 32);
        while (!cx_pubkey_from_seckey(w->pk[i], w->sk[i]));
    memcpy(w->pk[w->n - 1], D.hostpk, 33);
    w->acked = 0;
}

static json_t *jhex(const uint8_t *b, size_t len)
{
    char s[2 * 4096 + 1];
    net_hex_encode(s, b, len);
    return json_stringn(s, 2 * len);
}

static int get_hex(json_t *o, const char *k, uint8_t *out, size_t len, size_t cap, size_t *out_len)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) return 0;
    size_t sl = json_string_length(v);
    if (len) return net_hex_decode(out, len, json_string_value(v), sl);
    if (sl % 2 || sl / 2 > cap) return 0;
    *out_len = sl / 2;
    return net_hex_decode(out, sl / 2, json_string_value(v), sl);
}

/* Classifies one response; returns 1 if it is a (documented) response. */
static int account(req *q, long code, json_t *resp)
{
    C.responses++;
    double dt = now_ms() - q->t0;
    if (code == 0) {
        if (q->gen != D.gen) {
            C.transport_cut++;
            return 0;
        }
        C.by_code[CODE_TRANSPORT]++;
        violation("request without a response (transport failure) in a live daemon, wallet %d",
                  q->w ? q->w->no : -1);
        return 0;
    }
    if (q->gen == D.gen && dt > (double)O.rendezvous_ms + 10000) {
        C.late++;
        violation("response after %.0f ms, beyond the deadline", dt);
    }
    if (code == 200) {
        C.by_code[0]++;
        return 1;
    }
    const char *name = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
    for (size_t i = 1; name && i < N_CODES; i++)
        if (!strcmp(name, code_names[i])) {
            if (code_http[i] != code) break;
            C.by_code[i]++;
            return 1;
        }
    C.by_code[CODE_UNDOCUMENTED]++;
    violation("undocumented response: HTTP %ld code %s", code, name ? name : "(no JSON error)");
    return 1;
}

static int is_code(json_t *resp, const char *name)
{
    const char *c = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
    return c && !strcmp(c, name);
}

static void op_fail(wallet *w, long code, json_t *resp, const char *why)
{
    if (w->failed) return;
    w->failed = 1;
    w->fail_code = code;
    const char *m = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
    const char *c = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
    snprintf(w->fail_msg, sizeof w->fail_msg, "%s: HTTP %ld %s %s", why, code, c ? c : "",
             m ? m : "");
}

static void post(wallet *w, int dev, int kind, const char *method, const char *path, json_t *body)
{
    req *q = malloc(sizeof *q);
    *q = (req){w, dev, D.gen, kind, now_ms()};
    C.requests++;
    if (kind == RQ_OP && w->round == 1) w->r1_sent = q->t0;
    http_request(HC, method, path, body, w->sk[dev], on_resp, q);
}

static void op_done(wallet *w);
static void storm_step(wallet *w);
static void arm_store_fault(void);
static void dkg_round2(wallet *w);
static void sign_round2(wallet *w);
static void check_done(void);

static void start_dkg(wallet *w)
{
    w->state = W_BUSY;
    w->op = OP_DKG;
    w->round = 1;
    w->failed = 0;
    w->final_op = 0;
    w->op_gen = D.gen;
    w->op_t0 = now_ms();
    cg_dkg_params params = {.n = w->n, .t = w->t};
    json_t *hpk = json_array();
    for (uint32_t i = 0; i < w->n; i++) {
        memcpy(params.hostpubkeys[i], w->pk[i], 33);
        json_array_append_new(hpk, jhex(w->pk[i], 33));
    }
    json_t *bodies[MAXN] = {0};
    for (uint32_t i = 0; i < w->ndev; i++) {
        uint8_t pmsg1[CG_DKG_PMSG1_LEN(2, MAXN)], r[32];
        size_t len;
        cg_dkg_error e;
        cx_random(r, 32);
        if (cg_dkg_participant_step1(&w->st1[i], pmsg1, sizeof pmsg1, &len, w->sk[i], 32, &params,
                                     r, 32, &e) != RT_OK) {
            fprintf(stderr, "chaos: device DKG step 1 failed: %s\n", e.msg);
            exit(2);
        }
        bodies[i] = json_pack("{s:{s:O,s:i},s:o}", "params", "hostpubkeys", hpk, "t", (int)w->t,
                              "pmsg1", jhex(pmsg1, len));
        if (w->token[0]) json_object_set_new(bodies[i], "token", json_string(w->token));
    }
    json_decref(hpk);
    w->pending = (int)w->ndev;
    for (uint32_t i = 0; i < w->ndev; i++)
        post(w, (int)i, RQ_OP, "POST", "/v1/dkg/round1", bodies[i]);
}

static void dkg_round1_reply(wallet *w, long code, json_t *resp)
{
    uint8_t wid[32];
    if (code != 200)
        op_fail(w, code, resp, "dkg round 1");
    else if (!get_hex(resp, "cmsg1", w->cmsg1, 0, sizeof w->cmsg1, &w->cmsg1_len) ||
             !get_hex(resp, "wallet_id", wid, 32, 0, NULL))
        op_fail(w, code, resp, "malformed dkg round 1 reply");
    else
        memcpy(w->wid, wid, 32);
    if (--w->pending) return;
    if (w->failed) {
        op_done(w);
        return;
    }
    dkg_round2(w);
}

static void dkg_round2(wallet *w)
{
    json_t *bodies[MAXN] = {0};
    w->round = 2;
    net_hex_encode(w->wid_hex, w->wid, 32);
    for (uint32_t i = 0; i < w->ndev; i++) {
        uint8_t pmsg2[64], aux[32];
        cg_dkg_error e;
        cx_random(aux, 32);
        if (cg_dkg_participant_step2(&w->st2[i], pmsg2, w->sk[i], 32, &w->st1[i], w->cmsg1,
                                     w->cmsg1_len, aux, 32, NULL, &e) != RT_OK) {
            violation("the service's cmsg1 is refused by a device: %s", e.msg);
            for (uint32_t k = 0; k < i; k++)
                json_decref(bodies[k]);
            w->failed = 1;
            op_done(w);
            return;
        }
        bodies[i] = json_pack("{s:s,s:o}", "wallet_id", w->wid_hex, "pmsg2", jhex(pmsg2, 64));
    }
    w->pending = (int)w->ndev;
    w->r2_aborted = 0;
    w->r2_first = 0;
    if (w->store_fault == 2) arm_store_fault(); /* hits the commit of the DKG output */
    for (uint32_t i = 0; i < w->ndev; i++)
        post(w, (int)i, RQ_OP, "POST", "/v1/dkg/round2", bodies[i]);
}

static void dkg_round2_reply(wallet *w, long code, json_t *resp)
{
    if (code != 200)
        op_fail(w, code, resp, "dkg round 2");
    else if (!get_hex(resp, "cmsg2", w->cmsg2, 0, sizeof w->cmsg2, &w->cmsg2_len) ||
             !get_hex(resp, "thresh_pubkey", w->thresh_reply, 33, 0, NULL))
        op_fail(w, code, resp, "malformed dkg round 2 reply");
    if (--w->pending) return;
    if (!w->failed) {
        for (uint32_t i = 0; i < w->ndev; i++) {
            cg_dkg_output out;
            static uint8_t rec[CG_DKG_RECOVERY_MAX];
            size_t rl;
            cg_dkg_error e;
            if (cg_dkg_participant_finalize(&out, rec, sizeof rec, &rl, &w->st2[i], w->cmsg2,
                                            w->cmsg2_len, &e) != RT_OK ||
                memcmp(out.threshold_pubkey, w->thresh_reply, 33)) {
                violation("acknowledged DKG does not finalize on a device: %s",
                          e.msg ? e.msg : "threshold key differs");
                w->failed = 1;
                break;
            }
            memcpy(w->secshare[i], out.secshare, 32);
            memcpy(w->thresh, out.threshold_pubkey, 33);
            memcpy(w->pubshare, out.pubshares, sizeof w->pubshare);
            cg_dkg_wipe(&out, sizeof out);
        }
        if (!w->failed) w->acked = 1, C.dkg_ok++;
    }
    cg_dkg_wipe(w->st2, sizeof w->st2);
    op_done(w);
}

static void path_of(wallet *w, char *out, size_t cap, const char *tail)
{
    snprintf(out, cap, "/v1/wallets/%s%s", w->wid_hex, tail);
}

/* Sends the devices' round-1 posts; returns how many. dev_skip: a device
 * that does not post through the client (it posts and disconnects). */
static void start_sign(wallet *w, int with_fault, int disconnect)
{
    w->state = W_BUSY;
    w->op = OP_SIGN;
    w->round = 1;
    w->failed = 0;
    w->final_op = PHASE == 2;
    w->have_agg = w->have_sig = 0;
    w->op_gen = D.gen;
    w->op_t0 = now_ms();
    /* Signers: the service and one or all devices. */
    w->count = 0;
    uint32_t one = rnd(w->ndev);
    int all = w->ndev > 1 && rnd(2);
    for (uint32_t i = 0; i < w->ndev; i++)
        if (all || i == one) w->ids[w->count++] = i;
    w->ids[w->count++] = w->n - 1;
    cx_random(w->sid, 32);
    cx_random(w->msg, 32);
    w->taproot = (int)rnd(2);
    if (!verify_key(w->xonly, w->thresh, w->taproot, w->tweak)) {
        violation("wallet %d: threshold key does not parse", w->no);
        w->failed = 1;
        op_done(w);
        return;
    }
    char sid[65];
    net_hex_encode(sid, w->sid, 32);
    json_t *ids = json_array(), *tweaks = json_array();
    for (size_t k = 0; k < w->count; k++)
        json_array_append_new(ids, json_integer(w->ids[k]));
    if (w->taproot)
        json_array_append_new(tweaks,
                              json_pack("{s:o,s:b}", "tweak", jhex(w->tweak, 32), "xonly", 1));
    json_t *bodies[MAXN] = {0};
    for (size_t k = 0; k + 1 < w->count; k++) {
        uint32_t i = w->ids[k];
        cg_frost_error e;
        if (cg_frost_nonce_gen(&w->sn[i], w->pubnonce[i], w->secshare[i], w->pubshare[i], NULL,
                               w->msg, 32, NULL, 0, &e) != RT_OK) {
            fprintf(stderr, "chaos: device nonce generation failed: %s\n", e.msg);
            exit(2);
        }
        bodies[i] =
            json_pack("{s:s,s:O,s:o,s:O,s:o}", "session_id", sid, "signer_ids", ids, "msg",
                      jhex(w->msg, 32), "tweaks", tweaks, "pubnonce", jhex(w->pubnonce[i], 66));
    }
    json_decref(ids);
    json_decref(tweaks);
    char path[160];
    path_of(w, path, sizeof path, "/sign/round1");
    w->pending = (int)w->count - 1;
    for (size_t k = 0; k + 1 < w->count; k++) {
        uint32_t i = w->ids[k];
        if (disconnect && k == 0) {
            /* This device posts on its own socket and hangs up while the
             * round is parked (it waits for the other device): the service
             * must neither crash nor hang the session's other members. */
            char *body = json_dumps(bodies[i], JSON_COMPACT);
            char auth[NET_AUTH_HDR_MAX];
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            uint64_t ts = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
            net_auth_header(auth, w->sk[i], "POST", path, ts, (const uint8_t *)body, strlen(body));
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ND[0].port)};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
                char head[1024];
                int hl = snprintf(head, sizeof head,
                                  "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                                  "Content-Length: %zu\r\n\r\n",
                                  path, auth, strlen(body));
                (void)!send(fd, head, (size_t)hl, MSG_NOSIGNAL);
                (void)!send(fd, body, strlen(body), MSG_NOSIGNAL);
                usleep(5000); /* let it reach the actor and park */
            }
            if (fd >= 0) close(fd);
            free(body);
            json_decref(bodies[i]);
            C.faults[F_DISCONNECT]++;
            w->pending--;
            w->failed = 1; /* this session cannot complete: its device left */
            snprintf(w->fail_msg, sizeof w->fail_msg, "device disconnected (injected)");
            continue;
        }
        post(w, (int)i, RQ_OP, "POST", path, bodies[i]);
    }
    if (with_fault >= 0) {
        /* Injected while the round above is (about to be) parked. */
        C.faults[with_fault]++;
        C.faults[F_PARKED]++;
        char fp[160];
        path_of(w, fp, sizeof fp, "/fault");
        post(w, 0, RQ_FAULT, "POST", fp, json_pack("{s:s}", "kind", fault_route_kind[with_fault]));
    }
    if (!w->pending) op_done(w);
}

static void sign_round1_reply(wallet *w, long code, json_t *resp)
{
    uint8_t agg[66];
    if (code != 200)
        op_fail(w, code, resp, "sign round 1");
    else if (!get_hex(resp, "aggnonce", agg, 66, 0, NULL))
        op_fail(w, code, resp, "malformed sign round 1 reply");
    else if (w->have_agg && memcmp(agg, w->agg, 66))
        violation("wallet %d: the service sent different aggnonces to the devices", w->no);
    else {
        memcpy(w->agg, agg, 66);
        w->have_agg = 1;
    }
    if (--w->pending) return;
    if (w->failed) {
        op_done(w);
        return;
    }
    /* The service's public nonce = aggnonce - the devices' nonces. */
    uint8_t dev[MAXN][66], r[2][33];
    for (size_t k = 0; k + 1 < w->count; k++)
        memcpy(dev[k], w->pubnonce[w->ids[k]], 66);
    for (size_t h = 0; h < 2; h++)
        if (point_sub(r[h], w->agg + 33 * h, (const uint8_t(*)[66])dev, w->count - 1, h)) {
            C.nonces++;
            if (!pset_add(&NONCES, r[h]))
                violation("service public nonce repeated (wallet %d)", w->no);
        }
    sign_round2(w);
}

static void sign_round2(wallet *w)
{
    cg_frost_signers signers;
    cg_frost_tweak_ctx tc;
    cg_frost_session sess;
    cg_frost_error e;
    uint8_t ps[MAXN][33];
    for (size_t k = 0; k < w->count; k++)
        memcpy(ps[k], w->pubshare[w->ids[k]], 33);
    if (cg_frost_signers_init(&signers, w->n, w->t, w->ids, (const uint8_t(*)[33])ps, w->count,
                              w->thresh, &e) != RT_OK ||
        cg_frost_tweak_init(&tc, w->thresh, &e) != RT_OK ||
        (w->taproot && cg_frost_tweak_apply(&tc, w->tweak, 32, 1, &e) != RT_OK) ||
        cg_frost_session_init(&sess, &signers, &tc, w->agg, w->msg, 32, &e) != RT_OK) {
        violation("wallet %d: device cannot set up the signing session: %s", w->no, e.msg);
        w->failed = 1;
        op_done(w);
        return;
    }
    char sid[65], path[160];
    net_hex_encode(sid, w->sid, 32);
    path_of(w, path, sizeof path, "/sign/round2");
    json_t *bodies[MAXN] = {0};
    w->round = 2;
    for (size_t k = 0; k + 1 < w->count; k++) {
        uint32_t i = w->ids[k];
        uint8_t psig[32];
        if (cg_frost_sign(psig, &w->sn[i], w->secshare[i], i, &sess, &e) != RT_OK) {
            fprintf(stderr, "chaos: device signing failed: %s\n", e.msg);
            exit(2);
        }
        bodies[i] = json_pack("{s:s,s:o}", "session_id", sid, "psig", jhex(psig, 32));
    }
    w->pending = (int)w->count - 1;
    w->r2_aborted = 0;
    w->r2_first = 0;
    for (size_t k = 0; k + 1 < w->count; k++)
        post(w, (int)w->ids[k], RQ_OP, "POST", path, bodies[w->ids[k]]);
}

static void sign_round2_reply(wallet *w, long code, json_t *resp)
{
    uint8_t sig[64];
    if (code != 200)
        op_fail(w, code, resp, "sign round 2");
    else if (!get_hex(resp, "signature", sig, 64, 0, NULL))
        op_fail(w, code, resp, "malformed sign round 2 reply");
    else {
        if (w->have_sig && memcmp(sig, w->sig, 64))
            violation("wallet %d: devices got different signatures", w->no);
        memcpy(w->sig, sig, 64);
        w->have_sig = 1;
    }
    if (--w->pending) return;
    if (!w->failed) {
        if (bip340_verify(w->sig, w->msg, w->xonly))
            C.sign_verified++;
        else
            violation("wallet %d: signature does not verify under the %sthreshold key", w->no,
                      w->taproot ? "tweaked " : "");
        C.sign_ok++;
    }
    op_done(w);
}

/* Cluster only: a kill ends one node's lifetime, not the others'. A faulty
 * wallet served by a node that lived through it keeps what its faults left
 * there (a quarantine, an actor fault armed but not yet hit), so its check
 * or final signing may first get UNAVAILABLE where one daemon restarted
 * from scratch would not. Never for clean wallets. */
static int carried_over(const wallet *w, long code, json_t *resp)
{
    (void)resp;
    /* A faulty wallet may be answered UNAVAILABLE (restart backoff,
     * quarantine, and on a cluster a lease still held by the dead node) or
     * RESOURCE_EXHAUSTED (a flood's full mailbox) at the instant of the
     * check, by faults this harness keeps injecting; its durability is
     * still judged by its final signing, which retries those. */
    return !w->clean && (code == 503 || code == 429);
}

static void op_done(wallet *w)
{
    for (size_t i = 0; i < MAXN; i++)
        cg_frost_secnonce_wipe(&w->sn[i]);
    int cut = w->op_gen != D.gen;
    /* Cluster: until the dead node's leases expire, its wallets answer
     * UNAVAILABLE from the other nodes (documented); a restarted node hands
     * them over at once, so the window is short. */
    int failover = O.cluster && w->fail_code == 503 && D.kill_at &&
                   w->op_t0 < D.kill_at + (double)O.lease_ttl_ms + 1500;
    if (w->failed && w->final_op && !w->clean && (w->fail_code == 503 || w->fail_code == 429) &&
        w->final_retries < 8) {
        /* See carried_over(): the final signing of a faulty wallet may meet
         * the quarantine or armed fault its actor still has on a node that
         * lived through the kill; it retries once that has passed. */
        w->final_retries++;
        C.carried_over++;
        w->state = W_IDLE;
        w->op = OP_NONE;
        w->expect_errors = 0;
        w->next_at = now_ms() + 400;
        return;
    }
    if (w->failed) {
        if (cut)
            C.ops_cut++;
        else if (failover)
            C.failover_ops++;
        else if (w->round == 2 && w->r2_aborted &&
                 w->r2_first - w->r1_sent + COARSE_TICK_MS >= (double)O.idle_ms) {
            /* Documented behaviour, for clean wallets too: a DKG or signing
             * session lives only in the actor's memory (a secret nonce is
             * never persisted), and between the rounds nothing of it is
             * parked (round 1's waiters were answered) and the mailbox is
             * empty, so an actor idle for the threshold there is evicted
             * like any idle actor (DESIGN.md, "Idle eviction": empty mailbox,
             * no parked rendezvous) and round 2 finds no session (ABORTED).
             * Eviction needs the actor's last client request (a round-1 post,
             * sent at r1_sent or later) and the first round-2 post (answered
             * by r2_first) to be an idle threshold apart, less the tick by
             * which the daemon's coarse clock may date that request early;
             * an ABORTED round 2 after a shorter gap is a violation. Counted
             * and reported, not hidden. */
            C.evicted_sessions++;
            C.evicted_clean += w->clean != 0;
            logv("wallet %d: session lost to eviction, round gap %.0f ms\n", w->no,
                 w->r2_first - w->r1_sent);
        } else if (w->clean || w->final_op)
            violation("%s wallet %d: %s failed: %s", w->clean ? "clean" : "acknowledged", w->no,
                      w->op == OP_DKG ? "DKG" : "signing", w->fail_msg);
        else
            C.ops_failed_faulty++;
        logv("wallet %d op %d failed (%s)%s\n", w->no, w->op, w->fail_msg, cut ? " [crash]" : "");
    }
    if (w->final_op && !w->final_done) {
        w->final_done = 1;
        CHECKS_PENDING--;
    }
    w->state = W_IDLE;
    w->op = OP_NONE;
    w->expect_errors = 0;
    /* Idle gaps of 0-120 ms: longer than the 25 ms idle threshold half the
     * time, so the wallet's actor is evicted and re-activated constantly. */
    w->next_at = now_ms() + rnd(3 * (unsigned)O.idle_ms) + (w->failed && !w->clean ? 150 : 0);
    w->store_fault = 0;
    w->store_fail_seen = 0;
}

static void on_resp(void *arg, long code, json_t *resp, const char *err)
{
    (void)err;
    req *q = arg;
    wallet *w = q->w;
    int documented = account(q, code, resp);
    if (q->kind == RQ_STORM_FAULT || q->kind == RQ_STORM_GET) {
        int k = q->kind;
        /* A storm cut by a kill ends there: carried on against the new
         * daemon it would quarantine the wallet just as the post-restart
         * check asks for it. */
        if (q->gen != D.gen) w->storm_left = 0;
        free(q);
        if (k == RQ_STORM_FAULT && code == 200) {
            char p[160];
            path_of(w, p, sizeof p, "");
            post(w, 0, RQ_STORM_GET, "GET", p, NULL);
        } else if (k == RQ_STORM_GET && code == 503 && resp &&
                   strstr(
                       json_string_value(json_object_get(json_object_get(resp, "error"), "message"))
                           ?: "",
                       "quarantin")) {
            C.quarantined_seen++;
            w->storm_left = 0;
        }
        if (k == RQ_STORM_GET || code != 200) {
            if (w->storm_left > 0)
                storm_step(w);
            else {
                w->state = W_IDLE;
                w->next_at = now_ms() + 300;
            }
        }
        return;
    }
    if (q->kind == RQ_FAULT || q->kind == RQ_FLOOD) {
        if (q->kind == RQ_FLOOD && code == 429) C.flood_429++;
        free(q);
        return;
    }
    if (q->kind == RQ_CHECK) {
        if (q->gen == D.gen) {
            uint8_t th[33];
            if (carried_over(w, code, resp))
                C.carried_over++;
            else if (code != 200 || !get_hex(resp, "thresh_pubkey", th, 33, 0, NULL))
                violation("acknowledged wallet %d is not served after a restart: HTTP %ld", w->no,
                          code);
            else if (memcmp(th, w->thresh, 33))
                violation("acknowledged wallet %d came back with another threshold key", w->no);
        }
        free(q);
        CHECKS_PENDING--;
        check_done();
        return;
    }
    (void)documented;
    if (w->round == 2 && q->kind == RQ_OP) {
        if (!w->r2_first) w->r2_first = now_ms();
        if (code == 409 && is_code(resp, "ABORTED")) w->r2_aborted = 1;
    }
    if (w->store_fault && w->op == OP_DKG && q->kind == RQ_OP && q->gen == w->op_gen &&
        code == 503 && !w->store_fail_seen && is_code(resp, "UNAVAILABLE")) {
        /* The armed fsync failure hit this wallet's metadata write (round
         * 1) or the commit of its DKG output (round 2). */
        w->store_fail_seen = 1;
        C.store_fail_seen++;
    }
    if (q->gen != w->op_gen && !w->failed) {
        w->failed = 1;
        snprintf(w->fail_msg, sizeof w->fail_msg, "cut by a crash");
    }
    free(q);
    if (w->op == OP_DKG && w->round == 1)
        dkg_round1_reply(w, code, resp);
    else if (w->op == OP_DKG)
        dkg_round2_reply(w, code, resp);
    else if (w->op == OP_SIGN && w->round == 1)
        sign_round1_reply(w, code, resp);
    else if (w->op == OP_SIGN)
        sign_round2_reply(w, code, resp);
}

/* ---- scheduling ------------------------------------------------------------ */

/* One step of a restart storm: an actor-level fault armed, then a request
 * that makes the actor run (and fault). */
static void storm_step(wallet *w)
{
    char fp[160];
    path_of(w, fp, sizeof fp, "/fault");
    w->storm_left--;
    C.faults[F_ACTOR]++;
    post(w, 0, RQ_STORM_FAULT, "POST", fp, json_pack("{s:s}", "kind", "actor"));
}

static void arm_store_fault(void)
{
    if (!O.preload)
        return; /* nothing in the daemon to arm (e.g. a cluster: the fsync is the
                   database's) */
    C.faults[F_STORE]++;
    STORE_FAULT_QUIET_UNTIL = now_ms() + 2500;
    kill(ND[0].pid, SIGUSR2);
}

static int clean_dkg_in_flight(void)
{
    for (size_t i = 0; i < NW; i++)
        if (W[i]->clean && W[i]->op == OP_DKG) return 1;
    return 0;
}

static void flood(wallet *w)
{
    C.faults[F_FLOOD]++;
    char p[160], fp[160];
    path_of(w, p, sizeof p, "");
    path_of(w, fp, sizeof fp, "/fault");
    /* A runaway handler first keeps the actor busy, then a burst well above
     * its mailbox (16): the excess must be refused with 429, not queued. */
    C.faults[F_SPIN]++;
    post(w, 0, RQ_FAULT, "POST", fp, json_pack("{s:s}", "kind", "spin"));
    for (int i = 0; i < 40; i++)
        post(w, 0, RQ_FLOOD, "GET", p, NULL);
}

/* The daemons run with enrollment = token, as a fresh install does: like a
 * real operator, the harness mints a one-time token for each new set of
 * device keys with its admin key. A refused or unreachable mint (a node
 * being killed) is not a finding: the wallet tries again later. */
static uint8_t ADMIN_SK[32];

static int enroll(wallet *w)
{
    char err[300];
    w->token[0] = 0;
    if (admin_mint_token(D.url, ADMIN_SK, (const uint8_t(*)[33])w->pk, w->ndev, w->token, err,
                         sizeof err))
        return 1;
    C.mint_failures++;
    w->token[0] = 0;
    return 0;
}

static void schedule_wallet(wallet *w, double now)
{
    if (w->state != W_IDLE || now < w->next_at || w->retired) return;
    if (w->op == OP_NONE && !w->acked) {
        /* New keys for every attempt: a failed DKG's params may still have a
         * half-finished session in the service until it expires. */
        if (w->clean && now < STORE_FAULT_QUIET_UNTIL) return;
        wallet_keys(w);
        w->cmsg1_len = 0;
        if (!enroll(w)) {
            w->next_at = now + 200;
            return;
        }
        start_dkg(w);
        return;
    }
    if (w->clean || PHASE != 0) {
        start_sign(w, -1, 0);
        return;
    }
    unsigned r = rnd(100);
    if (r < 40) { /* a guest or actor fault while a round is parked */
        w->expect_errors = 1;
        start_sign(w, (int)rnd(6), 0);
    } else if (r < 55) { /* a fault between operations */
        int k = (int)rnd(6);
        C.faults[k]++;
        char fp[160];
        path_of(w, fp, sizeof fp, "/fault");
        post(w, 0, RQ_FAULT, "POST", fp, json_pack("{s:s}", "kind", fault_route_kind[k]));
        w->next_at = now + 30;
    } else if (r < 58) {
        /* A restart storm: actor-level faults beyond the restart intensity
         * (4 per second) must quarantine this wallet only. */
        C.storms++;
        w->storm_left = 6;
        w->state = W_BUSY;
        storm_step(w);
    } else if (r < 64) {
        flood(w);
        w->next_at = now + 300;
    } else if (r < 70 && w->ndev > 1) {
        w->expect_errors = 1;
        start_sign(w, -1, 1);
    } else if (r < 75 && !clean_dkg_in_flight()) {
        /* Storage failure during this wallet's DKG commit: re-key it (the
         * old identity stays acknowledged and is checked to the end). */
        wallet *old = wallet_new(0);
        int no = old->no;
        *old = *w;
        old->no = no;
        old->retired = 1;
        w->expect_errors = 1;
        wallet_keys(w);
        w->cmsg1_len = 0;
        enroll(w); /* without a token the DKG is refused: an expected error */
        /* Round 1 writes the wallet's metadata, round 2 commits its DKG
         * output: fail one or the other. */
        w->store_fault = 1 + (int)rnd(2);
        if (w->store_fault == 1) arm_store_fault();
        start_dkg(w);
    } else {
        start_sign(w, -1, 0);
    }
}

static void start_checks(void)
{
    PHASE = 1;
    CHECKS_PENDING = 0;
    for (size_t i = 0; i < NW; i++) {
        wallet *w = W[i];
        if (!w->acked) continue;
        char p[160];
        path_of(w, p, sizeof p, "");
        req *q = malloc(sizeof *q);
        *q = (req){w, 0, D.gen, RQ_CHECK, now_ms()};
        C.requests++;
        CHECKS_PENDING++;
        http_request(HC, "GET", p, NULL, w->sk[0], on_resp, q);
    }
    if (!CHECKS_PENDING) PHASE = 0;
}

static void check_done(void)
{
    if (PHASE == 1 && CHECKS_PENDING == 0) PHASE = 0;
}

static void start_final(void)
{
    PHASE = 2;
    CHECKS_PENDING = 0;
    for (size_t i = 0; i < NW; i++) {
        wallet *w = W[i];
        w->next_at = 0;
        if (!w->acked) {
            w->retired = 1; /* never acknowledged: nothing to check */
            continue;
        }
        w->retired = 0;
        CHECKS_PENDING++;
    }
}

static void crash_restart(void)
{
    int v = O.cluster ? (int)rnd((unsigned)NNODES) : 0;
    for (int i = 0; i < NNODES; i++)
        scrape_metrics(i);
    C.faults[F_KILL]++;
    kill(ND[v].pid, SIGKILL);
    waitpid(ND[v].pid, NULL, 0);
    D.kill_at = now_ms();
    scan_data_dir();
    D.gen++;
    daemon_start(v);
    logv("generation %d started (node %d killed and restarted)\n", D.gen, v);
}

static void rss_check(void)
{
    if (D.rss_early && D.rss_late > D.rss_early + D.rss_early / 2 + 64 * 1024)
        violation("RSS grew from %ld KiB to %ld KiB within one daemon lifetime", D.rss_early,
                  D.rss_late);
}

static double GEN_MS;
static long RSS_MAX;

static void tick(void *arg)
{
    (void)arg;
    double now = now_ms();
    if (PHASE == 0) {
        long rss = daemon_rss_kib();
        double age = (now - D.gen_start) / GEN_MS;
        if (rss > RSS_MAX) RSS_MAX = rss;
        if (age >= 0.25 && age < 0.5 && rss > D.rss_early) D.rss_early = rss;
        if (age >= 0.75 && rss > D.rss_late) D.rss_late = rss;
        if (now - D.gen_start >= GEN_MS) {
            rss_check();
            crash_restart();
            if (D.gen > O.kills)
                start_final();
            else
                start_checks();
            return;
        }
        for (size_t i = 0; i < NW; i++)
            schedule_wallet(W[i], now);
    } else if (PHASE == 2) {
        /* A few at a time: the device side must stay well inside the idle
         * threshold between the rounds of each session. */
        int busy = 0;
        for (size_t i = 0; i < NW; i++)
            busy += W[i]->state == W_BUSY;
        for (size_t i = 0; i < NW && busy < 6; i++)
            if (!W[i]->final_done && !W[i]->retired && W[i]->state == W_IDLE) {
                schedule_wallet(W[i], now);
                busy += W[i]->state == W_BUSY;
            }
        if (CHECKS_PENDING == 0) PHASE = 3;
    }
}

/* ---- main ------------------------------------------------------------------ */

/* One host key and one master key for every node: the cluster is one
 * ChillDKG participant and opens one set of sealed records. */
static void cluster_keys(void)
{
    uint8_t k[32];
    char p[700];
    for (int i = 0; i <= NNODES; i++) {
        if (i < NNODES) {
            mkdir(ND[i].data, 0700);
            snprintf(p, sizeof p, "%s/host.key", ND[i].data);
        } else {
            snprintf(p, sizeof p, "%s/master.key", D.workdir);
        }
        if (i == 0 || i == NNODES) do
                cx_random(k, 32);
            while (i == 0 && !cx_pubkey_from_seckey((uint8_t[33]){0}, k));
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, k, 32) != 32) {
            perror(p);
            exit(2);
        }
        close(fd);
    }
    cx_wipe(k, sizeof k);
}

static void usage(void)
{
    fprintf(stderr, "usage: chaos --daemon PATH [--preload PATH] [--seconds S] [--kills K] "
                    "[--clean N] [--faulty M] [--seed X] [--workdir DIR] [--verbose]\n");
    exit(2);
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            O.verbose = 1;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--daemon"))
            O.daemon = v;
        else if (!strcmp(a, "--preload"))
            O.preload = *v ? v : NULL;
        else if (!strcmp(a, "--seconds"))
            O.seconds = atof(v);
        else if (!strcmp(a, "--kills"))
            O.kills = atoi(v);
        else if (!strcmp(a, "--clean"))
            O.clean = atoi(v);
        else if (!strcmp(a, "--faulty"))
            O.faulty = atoi(v);
        else if (!strcmp(a, "--seed"))
            O.seed = (unsigned)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--min-faults"))
            O.min_faults = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--idle-ms"))
            O.idle_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--workdir"))
            O.workdir = v;
        else if (!strcmp(a, "--cluster"))
            O.cluster = atoi(v);
        else if (!strcmp(a, "--pg-dsn"))
            O.pg_dsn = v;
        else
            usage();
    }
    if (!O.daemon || O.kills < 1 || O.seconds <= 0) usage();
    if (O.cluster && !O.pg_dsn) O.pg_dsn = getenv("CG_TEST_PG_DSN"); /* tests/store/with_pg.sh */
    if (O.cluster && (O.cluster < 2 || O.cluster > MAX_NODES || !O.pg_dsn)) usage();
    NNODES = O.cluster ? O.cluster : 1;
    if (!O.seed) O.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(O.seed);
    if (!cx_init()) return 2;
    SECP = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    signal(SIGPIPE, SIG_IGN);

    char tmpl[400];
    snprintf(tmpl, sizeof tmpl, "%s/cosignerd-chaos.XXXXXX",
             O.workdir ? O.workdir : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp"));
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(D.workdir, sizeof D.workdir, "%s", tmpl);
    size_t ul = 0;
    for (int i = 0; i < NNODES; i++) {
        if (NNODES == 1) {
            snprintf(ND[i].data, sizeof ND[i].data, "%s/data", tmpl);
            snprintf(ND[i].log, sizeof ND[i].log, "%s/cosignerd.log", tmpl);
        } else {
            snprintf(ND[i].data, sizeof ND[i].data, "%s/data%d", tmpl, i);
            snprintf(ND[i].log, sizeof ND[i].log, "%s/cosignerd%d.log", tmpl, i);
        }
        ND[i].port = free_port();
        ul += (size_t)snprintf(D.url + ul, sizeof D.url - ul, "%shttp://127.0.0.1:%u", i ? "," : "",
                               ND[i].port);
    }
    if (O.cluster) cluster_keys();
    printf("chaos: seed %u, %.0f s, %d kills, %d clean + %d faulty wallets, %d node%s, daemon log "
           "%s\n",
           O.seed, O.seconds, O.kills, O.clean, O.faulty, NNODES, NNODES > 1 ? "s" : "", ND[0].log);
    fflush(stdout);
    {
        /* One admin key for every node (a cluster shares its admins). */
        uint8_t apk[33];
        char h[67];
        do
            cx_random(ADMIN_SK, 32);
        while (!cx_pubkey_from_seckey(apk, ADMIN_SK));
        net_hex_encode(h, apk, 33);
        setenv("COSIGNERD_ADMIN_PUBKEYS", h, 1);
        setenv("COSIGNERD_ENROLLMENT", "token", 1);
        /* The floods are aimed at the mailbox bound (429 from the actor's
         * mailbox, counted above): a per-key rate limit in front would
         * answer them first. Admission's own limits are tested apart. */
        setenv("COSIGNERD_RATE_LIMIT_RPS", "0", 1);
    }
    for (int i = 0; i < NNODES; i++)
        daemon_start(i);
    CUR = 0;
    HC = http_new(D.url, 256);
    for (int i = 0; i < O.clean + O.faulty; i++) {
        wallet *w = wallet_new(i < O.clean);
        w->next_at = now_ms() + rnd(200);
    }
    GEN_MS = O.seconds * 1000.0 / (O.kills + 1);
    double t_start = now_ms();
    while (PHASE != 3) {
        http_run(HC, tick, NULL);
        tick(NULL);
        if (PHASE != 3) usleep(2000);
        if (now_ms() - t_start > O.seconds * 1000.0 + 180000) {
            violation("the final signing round did not finish (%d wallets left)", CHECKS_PENDING);
            break;
        }
    }
    /* Graceful stop, then the last scan. */
    for (int i = 0; i < NNODES; i++) {
        scrape_metrics(i);
        kill(ND[i].pid, SIGTERM);
        int st = 0;
        waitpid(ND[i].pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            violation("the daemon did not stop cleanly on SIGTERM (status 0x%x, see %s)", st,
                      ND[i].log);
    }
    scan_data_dir();
    http_free(HC);

    size_t acked = 0;
    for (size_t i = 0; i < NW; i++)
        acked += W[i]->acked;
    uint64_t faults = 0;
    for (int k = 0; k < F_COUNT_; k++) {
        if (k != F_PARKED) faults += C.faults[k];
        /* A kind that was never injected would make a green run meaningless. */
        if (!C.faults[k] && (k != F_STORE || O.preload))
            violation("no fault of kind \"%s\" was injected", fault_names[k]);
    }
    /* Armed is not injected: at least one armed storage failure must have
     * reached its wallet as UNAVAILABLE (an arm that expires unused, or hits
     * another faulty wallet's commit, is possible; all of them is not). */
    if (O.preload && C.faults[F_STORE] && !C.store_fail_seen)
        violation("%" PRIu64 " store write failures armed, none seen as UNAVAILABLE by its wallet",
                  C.faults[F_STORE]);
    if (faults < O.min_faults)
        violation("only %" PRIu64 " faults injected, the run requires %" PRIu64, faults,
                  O.min_faults);
    if (C.faults[F_KILL] < (uint64_t)O.kills)
        violation("only %" PRIu64 " crash/restart cycles", C.faults[F_KILL]);
    printf("\n=== chaos summary (%.0f s, seed %u) ===\n", (now_ms() - t_start) / 1000.0, O.seed);
    printf("faults injected by kind\n");
    for (int k = 0; k < F_COUNT_; k++)
        printf("  %-40s %8" PRIu64 "\n", fault_names[k], C.faults[k]);
    printf("  %-40s %8" PRIu64 "\n", "total", faults);
    printf("daemon-side counters (all lifetimes)\n");
    for (size_t i = 0; i < N_METRICS; i++)
        printf("  %-58s %8" PRIu64 "\n", metric_names[i], C.metrics[i]);
    printf("requests %" PRIu64 ", responses %" PRIu64 ", cut by kill -9 %" PRIu64 "\n", C.requests,
           C.responses, C.transport_cut);
    printf("responses by code\n");
    for (size_t i = 0; i < N_CODES; i++)
        if (C.by_code[i])
            printf("  %-22s %3ld %8" PRIu64 "\n", code_names[i], code_http[i], C.by_code[i]);
    printf("  %-26s %8" PRIu64 "\n", "undocumented", C.by_code[CODE_UNDOCUMENTED]);
    printf("  %-26s %8" PRIu64 "\n", "no response (live daemon)", C.by_code[CODE_TRANSPORT]);
    printf("wallets %zu (acknowledged DKGs %zu), DKGs %" PRIu64 ", signatures %" PRIu64
           " (verified %" PRIu64 "), faulty-wallet ops failed %" PRIu64
           ", ops cut by a crash %" PRIu64 "\n",
           NW, acked, C.dkg_ok, C.sign_ok, C.sign_verified, C.ops_failed_faulty, C.ops_cut);
    printf("enrollment tokens that could not be minted (node down): %" PRIu64 "\n",
           C.mint_failures);
    printf("service nonces recorded %" PRIu64 " (distinct %zu), mailbox refusals in floods %" PRIu64
           "\n",
           C.nonces, NONCES.len, C.flood_429);
    printf("data-dir scans %" PRIu64 " (%" PRIu64
           " windows checked against the nonces), peak RSS %ld KiB\n",
           C.scans, C.scanned_windows, RSS_MAX);
    printf("store write failures armed %" PRIu64
           ", seen as UNAVAILABLE by the armed wallet %" PRIu64 "\n",
           C.faults[F_STORE], C.store_fail_seen);
    printf("restart storms %" PRIu64 " (quarantine answers seen %" PRIu64
           "), sessions lost to idle eviction between rounds %" PRIu64 " (%" PRIu64
           " of clean wallets; round gap >= idle threshold %" PRIu64 " ms)\n",
           C.storms, C.quarantined_seen, C.evicted_sessions, C.evicted_clean, O.idle_ms);
    if (O.cluster)
        printf("cluster of %d nodes: operations failed in a failover window (UNAVAILABLE) %" PRIu64
               "\n",
               NNODES, C.failover_ops);
    if (O.cluster)
        printf("faulty wallets' checks or final signings that met a fault state carried over on a "
               "surviving node %" PRIu64 "\n",
               C.carried_over);
    printf("invariant violations %" PRIu64 "\n", C.violations);
    if (!C.violations) {
        for (int i = 0; i < NNODES; i++)
            rm_rf(ND[i].data);
        char mk[600];
        snprintf(mk, sizeof mk, "%s/master.key", tmpl);
        unlink(mk);
        for (int i = 0; i < NNODES; i++)
            unlink(ND[i].log);
        rm_rf(tmpl);
    }
    for (size_t i = 0; i < NW; i++) {
        cx_wipe(W[i], sizeof *W[i]);
        free(W[i]);
    }
    free(W);
    free(NONCES.v);
    secp256k1_context_destroy(SECP);
    return C.violations ? 1 : 0;
}
