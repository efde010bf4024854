/*
 * main.c — the cosignerd daemon: configuration, the service host key, and
 * the wiring store -> runtime (with the sandboxed cosigner behaviour) -> HTTP.
 *
 * Configuration precedence (lowest first): built-in defaults, the INI file
 * (--config), the environment (COSIGNERD_<KEY>), command-line flags
 * (--<key> VALUE, dashes or underscores). Every option is one row of the
 * table below, so --help, the INI parser, the environment and the flags can
 * never disagree about names or defaults.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <malloc.h>

#include <ini.h>
#include <systemd/sd-daemon.h>

#include <sodium.h>

#include "cg_config.h"
#include "cx.h"
#include "net.h"
#include "rt.h"
#include "store.h"
#include "behaviour.h"

/* ---- logging ----------------------------------------------------------- */

/*
 * A value for key=value: as is when it is one plain token, else in double
 * quotes with \" \\ \n \r \t and \xNN escapes, so an event is always one
 * line and a value (a path, an error text) can never forge another key.
 * quote = 1 quotes even a plain token (free text such as reason=).
 * Truncated, still well-formed, to fit cap.
 */
static const char *kv(char *buf, size_t cap, const char *v, int quote)
{
    if (!v) v = "";
    int plain = *v != 0 && !quote;
    for (const unsigned char *p = (const unsigned char *)v; *p && plain; p++)
        if (*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' || *p == 0x7f) plain = 0;
    if (plain) return v;
    size_t n = 0;
    buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char e[8];
        int el;
        const char *esc = *p == '"'    ? "\\\""
                          : *p == '\\' ? "\\\\"
                          : *p == '\n' ? "\\n"
                          : *p == '\r' ? "\\r"
                          : *p == '\t' ? "\\t"
                                       : NULL;
        if (esc)
            el = snprintf(e, sizeof e, "%s", esc);
        else if (*p < 0x20 || *p == 0x7f)
            el = snprintf(e, sizeof e, "\\x%02x", *p);
        else
            e[0] = (char)*p, el = 1;
        if (n + (size_t)el + 2 > cap) break; /* room for the closing quote and NUL */
        memcpy(buf + n, e, (size_t)el);
        n += (size_t)el;
    }
    buf[n++] = '"';
    buf[n] = 0;
    return buf;
}
/* For logkv's arguments: the buffer lives until the end of the statement's block. */
#define KV(v) kv((char[512]){0}, 512, (v), 0)
#define KVQ(v) kv((char[512]){0}, 512, (v), 1)

/* One line per event, key=value, to stderr (journald adds the timestamp
 * under systemd; we add ours for plain terminals). Never a secret. String
 * values go through KV()/KVQ(); a control character that still reaches the
 * line is replaced, so one event stays one line. */
static void logkv(const char *level, const char *event, const char *fmt, ...)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char msg[768] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    fprintf(stderr, "ts=%s level=%s event=%s%s%s\n", ts, level, event, *msg ? " " : "", msg);
}

/* ---- configuration ----------------------------------------------------- */

typedef struct config {
    char listen[128];
    char data_dir[512];
    char master_key[512];
    char config_file[512];
    char store_backend[16];
    char pg_dsn[1024];
    char node_id[128];
    char node_url[256];
    uint64_t lease_ttl_ms;
    char enrollment[16];
    char admin_key_file[512];
    uint64_t rate_limit_rps, rate_limit_burst, auth_fail_per_min, auth_fail_burst, quota_wallets,
        quota_pending_dkg, max_pending_dkg, token_ttl_s;
    uint64_t sandbox_pool;
    uint64_t workers, mailbox_size, idle_threshold_ms, evict_quantum_ms, tick_interval_ms,
        max_resident, rendezvous_deadline_ms, cpu_budget_ms, restart_max, restart_window_ms,
        quarantine_base_ms, http_threads, body_max, header_max, url_max, conn_timeout_s,
        request_timeout_ms, max_connections, max_per_ip, auth_window_ms, replay_cache_entries,
        drain_timeout_ms, fault_injection, retire_grace_s, retire_sweep_ms;
    char admin_pubkeys[4096];
} config;

enum opt_type { T_STR, T_U64, T_BOOL };

typedef struct opt {
    const char *name;
    enum opt_type type;
    size_t off, size;
    const char *def;
    const char *help;
} opt;

#define S(f) offsetof(config, f), sizeof(((config *)0)->f)
static const opt opts[] = {
    {"listen", T_STR, S(listen), "127.0.0.1:7074", "HOST:PORT to serve HTTP on"},
    {"data_dir", T_STR, S(data_dir), "./data", "store, master key and host key directory"},
    {"master_key", T_STR, S(master_key), "",
     "store master key file (empty = DATA_DIR/master.key, created on first start; a "
     "configured file must exist)"},
    {"store_backend", T_STR, S(store_backend), "lmdb",
     "lmdb (one node, DATA_DIR/data.mdb) or postgres (a cluster on PG_DSN)"},
    {"pg_dsn", T_STR, S(pg_dsn), "", "postgres: libpq connection string of the cluster database"},
    {"node_id", T_STR, S(node_id), "",
     "postgres: this node's unique name in lease rows (empty = hostname:port)"},
    {"node_url", T_STR, S(node_url), "",
     "postgres: base URL other nodes forward this node's wallets to (empty = "
     "http://LISTEN)"},
    {"lease_ttl_ms", T_U64, S(lease_ttl_ms), "5000",
     "postgres: a wallet's lease expires this long after its last renewal"},
    {"enrollment", T_STR, S(enrollment), "token",
     "who may create wallets: token (one-time tokens an admin mints), admin (params an admin "
     "granted) or open (anyone; quotas still apply)"},
    {"admin_pubkeys", T_STR, S(admin_pubkeys), "",
     "comma-separated admin host public keys (33-byte hex) allowed on /v1/admin/ (empty = the "
     "key in ADMIN_KEY_FILE, created on first start)"},
    {"admin_key_file", T_STR, S(admin_key_file), "",
     "with no admin_pubkeys: the bootstrap admin secret key (empty = DATA_DIR/admin.key)"},
    {"rate_limit_rps", T_U64, S(rate_limit_rps), "50",
     "requests per second per host key (token bucket; 0 = no limit)"},
    {"rate_limit_burst", T_U64, S(rate_limit_burst), "100", "... and its burst"},
    {"auth_fail_per_min", T_U64, S(auth_fail_per_min), "120",
     "failed authentications per minute per client address before 429 (0 = no limit)"},
    {"auth_fail_burst", T_U64, S(auth_fail_burst), "60", "... and its burst"},
    {"quota_wallets", T_U64, S(quota_wallets), "100",
     "wallets a host key may be a device of (0 = no limit)"},
    {"quota_pending_dkg", T_U64, S(quota_pending_dkg), "8",
     "new-wallet DKG round 1s a host key may have waiting (0 = no limit)"},
    {"max_pending_dkg", T_U64, S(max_pending_dkg), "10000",
     "new-wallet DKG round 1s waiting on this node, all keys (0 = no limit)"},
    {"token_ttl_s", T_U64, S(token_ttl_s), "604800", "default lifetime of an enrollment token"},
    {"workers", T_U64, S(workers), "0", "actor worker threads (0 = cores)"},
    {"mailbox_size", T_U64, S(mailbox_size), "256", "messages queued per wallet actor"},
    {"idle_threshold_ms", T_U64, S(idle_threshold_ms), "1800000",
     "evict a wallet actor idle this long"},
    {"evict_quantum_ms", T_U64, S(evict_quantum_ms), "60000", "eviction sweep period"},
    {"tick_interval_ms", T_U64, S(tick_interval_ms), "60000",
     "housekeeping tick (expire sessions, wipe nonces)"},
    {"max_resident", T_U64, S(max_resident), "100000",
     "cap on resident actors, LRU evicted first (0 = none)"},
    {"rendezvous_deadline_ms", T_U64, S(rendezvous_deadline_ms), "60000",
     "how long a round waits for the other devices"},
    {"cpu_budget_ms", T_U64, S(cpu_budget_ms), "100", "guest CPU budget per message"},
    {"sandbox_pool", T_U64, S(sandbox_pool), "64", "closed guest instances kept warm (0 = none)"},
    {"restart_max", T_U64, S(restart_max), "5", "actor restarts allowed per window ..."},
    {"restart_window_ms", T_U64, S(restart_window_ms), "10000", "... before quarantine"},
    {"quarantine_base_ms", T_U64, S(quarantine_base_ms), "1000",
     "first quarantine backoff (doubles)"},
    {"http_threads", T_U64, S(http_threads), "2", "HTTP thread pool size"},
    {"body_max", T_U64, S(body_max), "65536", "request body cap in bytes (413 above)"},
    {"header_max", T_U64, S(header_max), "16384", "request header memory in bytes"},
    {"url_max", T_U64, S(url_max), "512", "URL length cap (414 above)"},
    {"conn_timeout_s", T_U64, S(conn_timeout_s), "15", "idle connection timeout (slowloris)"},
    {"request_timeout_ms", T_U64, S(request_timeout_ms), "30000",
     "time allowed to upload one request"},
    {"max_connections", T_U64, S(max_connections), "1024",
     "open connections before 429 + Retry-After"},
    {"max_per_ip", T_U64, S(max_per_ip), "0", "connections per client address (0 = no cap)"},
    {"auth_window_ms", T_U64, S(auth_window_ms), "300000", "accepted request timestamp skew"},
    {"replay_cache_entries", T_U64, S(replay_cache_entries), "1048576",
     "request nonces remembered per window"},
    {"drain_timeout_ms", T_U64, S(drain_timeout_ms), "10000",
     "SIGTERM: wait this long for in-flight requests"},
    {"fault_injection", T_BOOL, S(fault_injection), "false",
     "accept test fault requests (fault-injection builds only)"},
    {"retire_grace_s", T_U64, S(retire_grace_s), "604800",
     "a retired wallet's share is wiped this long after retirement (requests may shorten it)"},
    {"retire_sweep_ms", T_U64, S(retire_sweep_ms), "60000",
     "how often retired wallets past their grace are wiped (also at start; at most the grace)"},
};
#undef S
#define NOPTS (sizeof opts / sizeof opts[0])

static const opt *find_opt(const char *name)
{
    char n[64];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof n; i++)
        n[i] = name[i] == '-' ? '_' : name[i];
    n[i] = 0;
    for (size_t k = 0; k < NOPTS; k++)
        if (!strcasecmp(opts[k].name, n)) return &opts[k];
    return NULL;
}

static int set_opt(config *c, const opt *o, const char *v, char *err, size_t el)
{
    char *p = (char *)c + o->off;
    if (o->type == T_STR) {
        if (strlen(v) >= o->size) {
            snprintf(err, el, "%s: value too long", o->name);
            return 0;
        }
        strcpy(p, v);
        return 1;
    }
    uint64_t x;
    if (o->type == T_BOOL) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
            !strcasecmp(v, "on"))
            x = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "off"))
            x = 0;
        else {
            snprintf(err, el, "%s: expected a boolean, got \"%s\"", o->name, v);
            return 0;
        }
    } else {
        char *end;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno || end == v || *end || *v == '-') {
            snprintf(err, el, "%s: expected a non-negative integer, got \"%s\"", o->name, v);
            return 0;
        }
    }
    memcpy(p, &x, sizeof x);
    return 1;
}

typedef struct ini_ctx {
    config *c;
    char err[256];
} ini_ctx;

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    (void)section; /* one flat namespace: sections are only for the reader */
    ini_ctx *x = user;
    const opt *o = find_opt(name);
    if (!o) {
        snprintf(x->err, sizeof x->err, "unknown option \"%s\"", name);
        return 0;
    }
    return set_opt(x->c, o, value, x->err, sizeof x->err);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: cosignerd [--listen HOST:PORT] [--data-dir DIR] [--config FILE] [OPTION "
               "VALUE]...\n"
               "       cosignerd --check-config [--config FILE] ...\n"
               "       cosignerd --help | --version\n\n"
               "Threshold-signing cosigner service (ChillDKG + BIP 445 FROST over HTTP/JSON).\n\n"
               "Options (INI key, COSIGNERD_<KEY> environment variable, or --key VALUE):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", opts[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_') *p = '-';
        if (*opts[i].def)
            fprintf(f, "  %-28s %s (default %s)\n", flag, opts[i].help, opts[i].def);
        else
            fprintf(f, "  %-28s %s\n", flag, opts[i].help);
    }
    fprintf(f, "\nThe INI file may also be named by COSIGNERD_CONFIG (--config wins).\n"
               "Precedence: defaults < INI file < COSIGNERD_<KEY> < --key VALUE.\n"
               "See cosignerd(8).\n");
}

/* Returns 0 ok, 1 exit success (help/version), -1 error. */
static int load_config(config *c, int argc, char **argv, int *check_only)
{
    char err[256] = "";
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NOPTS; i++)
        set_opt(c, &opts[i], opts[i].def, err, sizeof err);
    /* Pass 1: the few flags that decide what to read. */
    const char *cfg = getenv("COSIGNERD_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("cosignerd %s%s\n", CG_VERSION, CG_FAULT_INJECTION ? " (fault injection)" : "");
            return 1;
        }
        if (!strcmp(argv[i], "--check-config")) *check_only = 1;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cosignerd: --config needs a FILE\n");
                return -1;
            }
            cfg = argv[i + 1];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            cfg = argv[i] + 9;
        }
    }
    if (cfg) {
        ini_ctx x = {c, ""};
        int r = ini_parse(cfg, on_ini, &x);
        if (r < 0) {
            fprintf(stderr, "cosignerd: cannot read config file %s\n", cfg);
            return -1;
        }
        if (r > 0) {
            fprintf(stderr, "cosignerd: %s:%d: %s\n", cfg, r, *x.err ? x.err : "syntax error");
            return -1;
        }
        snprintf(c->config_file, sizeof c->config_file, "%s", cfg);
    }
    for (size_t i = 0; i < NOPTS; i++) {
        char env[64] = "COSIGNERD_";
        size_t n = strlen(env);
        for (const char *p = opts[i].name; *p && n + 1 < sizeof env; p++)
            env[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[n] = 0;
        const char *v = getenv(env);
        if (v && !set_opt(c, &opts[i], v, err, sizeof err)) {
            fprintf(stderr, "cosignerd: %s: %s\n", env, err);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--check-config")) continue;
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "cosignerd: unexpected argument \"%s\" (try --help)\n", a);
            return -1;
        }
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "cosignerd: --%s needs a value\n", name);
                return -1;
            }
            val = argv[++i];
        }
        if (!strcmp(name, "config")) continue;
        const opt *o = find_opt(name);
        if (!o) {
            fprintf(stderr, "cosignerd: unknown option --%s (try --help)\n", name);
            return -1;
        }
        if (!set_opt(c, o, val, err, sizeof err)) {
            fprintf(stderr, "cosignerd: %s\n", err);
            return -1;
        }
    }
    if (c->fault_injection && !CG_FAULT_INJECTION) {
        fprintf(stderr, "cosignerd: fault_injection ignored: this build has no fault injection\n");
        c->fault_injection = 0;
    }
    if (c->body_max < 1024 || c->body_max > (64u << 20)) {
        fprintf(stderr, "cosignerd: body_max must be in 1 KiB..64 MiB\n");
        return -1;
    }
    if (strcmp(c->store_backend, "lmdb") && strcmp(c->store_backend, "postgres")) {
        fprintf(stderr, "cosignerd: store_backend must be lmdb or postgres, got \"%s\"\n",
                c->store_backend);
        return -1;
    }
    if (strcmp(c->enrollment, "token") && strcmp(c->enrollment, "admin") &&
        strcmp(c->enrollment, "open")) {
        fprintf(stderr, "cosignerd: enrollment must be token, admin or open, got \"%s\"\n",
                c->enrollment);
        return -1;
    }
    if (!strcmp(c->store_backend, "postgres") && !*c->pg_dsn) {
        fprintf(stderr, "cosignerd: store_backend = postgres needs pg_dsn\n");
        return -1;
    }
    if (c->lease_ttl_ms < 300 || c->lease_ttl_ms > 600000) {
        fprintf(stderr, "cosignerd: lease_ttl_ms must be in 300..600000\n");
        return -1;
    }
    if (!c->mailbox_size || !c->http_threads || !c->max_connections || !c->auth_window_ms) {
        fprintf(stderr, "cosignerd: mailbox_size, http_threads, max_connections and "
                        "auth_window_ms must be positive\n");
        return -1;
    }
    return 0;
}

static int parse_listen(const char *s, char *host, size_t hl, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return 0;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hl) return 0;
    memcpy(host, h, n);
    host[n] = 0;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end || p > 65535 || end == colon + 1) return 0;
    *port = (uint16_t)p;
    return 1;
}

/* A connection string with its password replaced, for output an operator
 * may paste into a ticket: "password=..." pairs and URI userinfo. */
static const char *dsn_masked(const char *dsn)
{
    static char out[1100];
    size_t o = 0;
    const char *p = dsn;
    const char *at = strchr(dsn, '@'), *scheme = strstr(dsn, "://");
    while (*p && o + 8 < sizeof out) {
        if (scheme && at && p > scheme + 2 && p < at && *p == ':') {
            o += (size_t)snprintf(out + o, sizeof out - o, ":***");
            p = at;
            continue;
        }
        if (!strncasecmp(p, "password=", 9) && (p == dsn || p[-1] == ' ')) {
            o += (size_t)snprintf(out + o, sizeof out - o, "password=***");
            p += 9;
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p++)
                    if (*p == '\\' && p[1]) p++;
                if (*p) p++;
            } else {
                while (*p && *p != ' ')
                    p++;
            }
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = 0;
    return out;
}

/* ---- host key ---------------------------------------------------------- */

/*
 * The service's ChillDKG host secret key: created on first start, kept 0600
 * in the data dir, and the same forever after (the wallets' session params
 * name its public key). Losing it does not lose funds (devices can recover)
 * but a changed key would make every wallet refuse the service.
 */
static int key_file(const char *dir, const char *path, int hex, uint8_t sk[32], uint8_t pk[33],
                    const char *event);
static int host_key(const char *dir, uint8_t sk[32], uint8_t pk[33])
{
    char path[600];
    snprintf(path, sizeof path, "%s/host.key", dir);
    return key_file(dir, path, 0, sk, pk, "host_key");
}

/*
 * A secret key file, created (0600, atomically) when absent. hex = 1 keeps
 * it as a line of hex, the format cosigner-cli reads with --key and
 * --admin-key. event names the log events.
 */
static int key_file(const char *dir, const char *path, int hex, uint8_t sk[32], uint8_t pk[33],
                    const char *event)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && (st.st_mode & 077))
            logkv("warn", "key_permissions", "key=%s path=%s mode=%o", event, KV(path),
                  st.st_mode & 0777);
        char buf[80];
        ssize_t r = read(fd, buf, hex ? sizeof buf : 32);
        close(fd);
        int good;
        if (hex) {
            size_t n = r > 0 ? (size_t)r : 0;
            while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
                n--;
            good = net_hex_decode(sk, 32, buf, n);
        } else {
            good = r == 32;
            if (good) memcpy(sk, buf, 32);
        }
        cx_wipe(buf, sizeof buf);
        if (!good || !cx_pubkey_from_seckey(pk, sk)) {
            logkv("error", "key_invalid", "key=%s path=%s", event, KV(path));
            return 0;
        }
        return 1;
    }
    if (errno != ENOENT) {
        logkv("error", "key_unreadable", "key=%s path=%s errno=%d reason=%s", event, KV(path),
              errno, KVQ(strerror(errno)));
        return 0;
    }
    do
        cx_random(sk, 32);
    while (!cx_pubkey_from_seckey(pk, sk));
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char line[66];
    net_hex_encode(line, sk, 32);
    line[64] = '\n';
    const void *out = hex ? (const void *)line : (const void *)sk;
    ssize_t outn = hex ? 65 : 32;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int wrote = fd >= 0 && write(fd, out, (size_t)outn) == outn && fsync(fd) == 0;
    cx_wipe(line, sizeof line);
    if (fd >= 0 && close(fd) != 0) wrote = 0;
    if (!wrote || rename(tmp, path) != 0) {
        logkv("error", "key_create_failed", "key=%s path=%s errno=%d reason=%s", event, KV(path),
              errno, KVQ(strerror(errno)));
        return 0;
    }
    /* The directory entry too: the key must survive a crash once used. */
    char dbuf[600];
    snprintf(dbuf, sizeof dbuf, "%s", path);
    char *slash = strrchr(dbuf, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? dbuf : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    logkv("info", "key_created", "key=%s path=%s", event, KV(path));
    return 1;
}

/* ---- store adapters ---------------------------------------------------- */

static rt_status meta_get(void *ud, const rt_key *k, uint8_t **v, size_t *l)
{
    return store_get_meta(ud, k->b, v, l);
}

static rt_status meta_put(void *ud, const rt_key *k, const uint8_t *v, size_t l)
{
    return store_put_meta(ud, k->b, v, l);
}

static rt_status meta_cas(void *ud, const rt_key *k, const uint8_t *expect, size_t elen,
                          const uint8_t *v, size_t l)
{
    return store_cas_meta(ud, k->b, expect, elen, v, l);
}

typedef struct list_ctx {
    rt_key *ids;
    uint64_t *versions;
    size_t max, n;
} list_ctx;

static int list_cb(void *arg, const rt_key *key, uint64_t version)
{
    list_ctx *x = arg;
    x->ids[x->n] = *key;
    x->versions[x->n++] = version;
    return x->n == x->max;
}

static rt_status meta_list(void *ud, const rt_key *after, rt_key *ids, uint64_t *versions,
                           size_t max, size_t *n)
{
    list_ctx x = {ids, versions, max, 0};
    *n = 0;
    if (!max) return RT_OK;
    rt_status st = store_iterate_from(ud, after, list_cb, &x);
    *n = x.n;
    return st;
}

/* ---- retirement -------------------------------------------------------- */

#define MAX_ADMIN_KEYS 64
static uint8_t admin_keys[MAX_ADMIN_KEYS][33];

/* "hex33,hex33,..." (spaces around commas allowed) into admin_keys. Every
 * key must be a valid compressed point: a typo must not leave an operator
 * locked out without a word. Returns the count, or -1 with err set. */
static int parse_admin_keys(const char *list, char *err, size_t el)
{
    int n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        uint8_t pt[64];
        if (n == MAX_ADMIN_KEYS) {
            snprintf(err, el, "admin_pubkeys: at most %d keys", MAX_ADMIN_KEYS);
            return -1;
        }
        if (!net_hex_decode(admin_keys[n], 33, p, (size_t)(e - p)) ||
            !cx_point_parse(pt, admin_keys[n], 0)) {
            snprintf(err, el, "admin_pubkeys: key %d is not a 33-byte compressed public key in hex",
                     n + 1);
            return -1;
        }
        n++;
        p = e;
    }
    return n;
}

typedef struct sweep_keys {
    rt_key *k;
    size_t n, cap;
} sweep_keys;

static int sweep_collect(void *arg, const rt_key *key, uint64_t version)
{
    (void)version;
    sweep_keys *sk = arg;
    if (sk->n == sk->cap) {
        size_t nc = sk->cap ? 2 * sk->cap : 256;
        rt_key *nk = realloc(sk->k, nc * sizeof *nk);
        if (!nk) return 1; /* the rest waits for the next sweep */
        sk->k = nk;
        sk->cap = nc;
    }
    sk->k[sk->n++] = *key;
    return 0;
}

/*
 * Wipes the share of every retired wallet whose grace has passed: ends its
 * activation (the guest instance and every secret in it go) and overwrites
 * its record in the store (store_wipe). Walks the records (keys first: the
 * walk may not write), reading each one's public metadata: one small read per
 * wallet per sweep. The metadata and its retirement marker stay, so the
 * wallet keeps answering 412 "wallet retired" after the wipe.
 */
static void retire_sweep(store *st, rt_runtime *rt)
{
    sweep_keys sk = {0};
    if (store_iterate(st, sweep_collect, &sk) != RT_OK) {
        logkv("warn", "retire_sweep_failed", "reason=%s", KVQ("cannot list the store's records"));
        free(sk.k);
        return;
    }
    uint64_t now = 0;
    for (size_t i = 0; i < sk.n; i++) {
        uint8_t *meta = NULL;
        size_t ml = 0;
        net_retired r;
        if (store_get_meta(st, sk.k[i].b, &meta, &ml) != RT_OK) continue;
        int ret = net_meta_retired(meta, ml, &r);
        free(meta);
        if (ret <= 0) continue;
        if (!now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        }
        if (now < r.wipe_after_ms) continue;
        char w[65];
        net_hex_encode(w, sk.k[i].b, 32);
        rt_deactivate(rt, &sk.k[i]);
        rt_status s = store_wipe(st, &sk.k[i]);
        if (s == RT_OK || s == RT_NOT_FOUND)
            logkv("info", "wallet_wiped", "wallet=%s retired_at_ms=%" PRIu64, w, r.retired_at_ms);
        else
            logkv("error", "wallet_wipe_failed", "wallet=%s status=%s", w, rt_status_name(s));
    }
    free(sk.k);
}

/* ---- cluster adapters -------------------------------------------------- */

/* The runtime, once started: the store's lease thread ends activations of
 * wallets whose lease this node lost (before that, nothing is active). */
static rt_runtime *lease_rt; /* under lease_rt_lock: rt_stop must not free it under a caller */
static pthread_rwlock_t lease_rt_lock = PTHREAD_RWLOCK_INITIALIZER;
static store *cluster_store;

static void set_lease_rt(rt_runtime *rt)
{
    pthread_rwlock_wrlock(&lease_rt_lock);
    lease_rt = rt;
    pthread_rwlock_unlock(&lease_rt_lock);
}

static void on_lease_lost(void *ud, const rt_key *wallet)
{
    (void)ud;
    pthread_rwlock_rdlock(&lease_rt_lock);
    if (lease_rt) rt_deactivate(lease_rt, wallet);
    pthread_rwlock_unlock(&lease_rt_lock);
}

static rt_status cluster_route(void *ud, const rt_key *w, int *local, char *url, size_t n)
{
    store_lease l;
    rt_status s = store_lease_acquire(ud, w, &l);
    if (s != RT_OK) return s;
    *local = l.held;
    if (!l.held) snprintf(url, n, "%s", l.owner_url);
    return RT_OK;
}

static int cluster_valid(void *ud, const rt_key *w)
{
    return store_lease_valid(ud, w);
}

static int cluster_reachable(void *ud)
{
    return store_reachable(ud);
}

/*
 * The runtime's persistence goes through this thin wrapper so the daemon can
 * measure store commit latency (save -> durable) without the store or the
 * runtime knowing about metrics.
 */
#define LAT_BUCKETS 12
static const double lat_bounds_ms[LAT_BUCKETS] = {0.25, 0.5, 1,   2,   5,    10,
                                                  20,   50,  100, 250, 1000, 5000};
static struct {
    const rt_persist *inner;
    rt_persist outer;
    _Atomic uint64_t bucket[LAT_BUCKETS + 1];
    _Atomic uint64_t sum_us, count;
} commit_lat;

typedef struct save_ctx {
    void (*done)(void *arg, rt_status st);
    void *arg;
    uint64_t t0_us;
} save_ctx;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void save_done(void *arg, rt_status st)
{
    save_ctx *c = arg;
    uint64_t us = mono_us() - c->t0_us;
    unsigned b = 0;
    while (b < LAT_BUCKETS && (double)us > lat_bounds_ms[b] * 1000.0)
        b++;
    atomic_fetch_add_explicit(&commit_lat.bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&commit_lat.sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&commit_lat.count, 1, memory_order_relaxed);
    void (*done)(void *, rt_status) = c->done;
    void *darg = c->arg;
    free(c);
    done(darg, st);
}

static rt_status persist_load(void *ud, const rt_key *k, uint8_t **rec, size_t *len, uint64_t *v)
{
    (void)ud;
    /* A cluster activates a wallet only under its lease: a load elsewhere
     * (a request that raced a lease loss) is refused, not served. */
    if (cluster_store && !store_lease_valid(cluster_store, k)) return RT_ABORTED;
    return commit_lat.inner->load(commit_lat.inner->ud, k, rec, len, v);
}

static void persist_save(void *ud, const rt_key *k, const uint8_t *rec, size_t len, uint64_t v,
                         void (*done)(void *, rt_status), void *arg)
{
    (void)ud;
    save_ctx *c = malloc(sizeof *c);
    if (!c) {
        done(arg, RT_UNAVAILABLE);
        return;
    }
    c->done = done;
    c->arg = arg;
    c->t0_us = mono_us();
    commit_lat.inner->save(commit_lat.inner->ud, k, rec, len, v, save_done, c);
}

typedef struct extra_ctx {
    store *st;
} extra_ctx;

static void metrics_extra(void *ud, FILE *f)
{
    extra_ctx *x = ud;
    store_stats ss;
    store_get_stats(x->st, &ss);
    fprintf(f, "# HELP cosignerd_store_commit_duration_seconds Actor record save to durable.\n"
               "# TYPE cosignerd_store_commit_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        cum += atomic_load(&commit_lat.bucket[b]);
        fprintf(f, "cosignerd_store_commit_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                lat_bounds_ms[b] / 1000.0, cum);
    }
    fprintf(f,
            "cosignerd_store_commit_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
            "cosignerd_store_commit_duration_seconds_sum %.6f\n"
            "cosignerd_store_commit_duration_seconds_count %" PRIu64 "\n",
            atomic_load(&commit_lat.count), (double)atomic_load(&commit_lat.sum_us) / 1e6,
            atomic_load(&commit_lat.count));
    fprintf(f,
            "# HELP cosignerd_store_commits_total LMDB write transactions committed.\n"
            "# TYPE cosignerd_store_commits_total counter\ncosignerd_store_commits_total %" PRIu64
            "\n"
            "# HELP cosignerd_store_commit_failures_total LMDB commits that failed.\n"
            "# TYPE cosignerd_store_commit_failures_total counter\n"
            "cosignerd_store_commit_failures_total %" PRIu64 "\n"
            "# HELP cosignerd_store_group_commit_max Largest group commit so far.\n"
            "# TYPE cosignerd_store_group_commit_max gauge\ncosignerd_store_group_commit_max "
            "%" PRIu64 "\n",
            ss.commits, ss.commit_failures, ss.max_batch_seen);
    if (cluster_store) {
        fprintf(f,
                "# HELP cosignerd_cluster_leases_held Wallet leases this node holds.\n"
                "# TYPE cosignerd_cluster_leases_held gauge\ncosignerd_cluster_leases_held "
                "%" PRIu64 "\n"
                "# HELP cosignerd_cluster_leases_acquired_total Free lease rows taken.\n"
                "# TYPE cosignerd_cluster_leases_acquired_total counter\n"
                "cosignerd_cluster_leases_acquired_total %" PRIu64 "\n"
                "# HELP cosignerd_cluster_leases_taken_over_total Expired leases of another "
                "node taken over.\n"
                "# TYPE cosignerd_cluster_leases_taken_over_total counter\n"
                "cosignerd_cluster_leases_taken_over_total %" PRIu64 "\n"
                "# HELP cosignerd_cluster_leases_lost_total Leases this node lost.\n"
                "# TYPE cosignerd_cluster_leases_lost_total counter\n"
                "cosignerd_cluster_leases_lost_total %" PRIu64 "\n"
                "# HELP cosignerd_cluster_fence_refusals_total Commits refused: stale lease "
                "epoch.\n"
                "# TYPE cosignerd_cluster_fence_refusals_total counter\n"
                "cosignerd_cluster_fence_refusals_total %" PRIu64 "\n",
                ss.leases_held, ss.leases_acquired, ss.leases_taken_over, ss.leases_lost,
                ss.fence_refusals);
    }
    behaviour_metrics(f);
}

/* ---- runtime events ---------------------------------------------------- */

/*
 * One log line per supervision event. Runs on a runtime thread (never under
 * an actor lock): formatting and one write(2), nothing that waits. The
 * wallet id is public (a hash of the participants' public keys); reasons
 * are the runtime's and the sandbox's fixed texts, never request data.
 */
static void on_rt_event(void *ud, const rt_event *ev)
{
    (void)ud;
    char wallet[65];
    net_hex_encode(wallet, ev->key->b, 32);
    const char *level = ev->kind == RT_EV_COMMIT_FAILED ||
                                (ev->kind == RT_EV_ACTIVATION_FAILED && ev->status == RT_DATA_LOSS)
                            ? "error"
                            : "warn";
    const char *name = rt_event_name(ev->kind);
    if (ev->kind == RT_EV_HANDLER_FAULT)
        logkv(level, name, "wallet=%s kind=%s status=%s reason=%s", wallet, KV(ev->fault),
              rt_status_name(ev->status), KVQ(ev->reason));
    else if (ev->kind == RT_EV_ACTOR_QUARANTINED)
        logkv(level, name, "wallet=%s status=%s retry_after_ms=%" PRIu64 " reason=%s", wallet,
              rt_status_name(ev->status), ev->retry_after_ms, KVQ(ev->reason));
    else
        logkv(level, name, "wallet=%s status=%s reason=%s", wallet, rt_status_name(ev->status),
              KVQ(ev->reason));
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    config c;
    int check_only = 0;
    int r = load_config(&c, argc, argv, &check_only);
    if (r) return r > 0 ? 0 : 2;
    char host[96];
    uint16_t port;
    if (!parse_listen(c.listen, host, sizeof host, &port)) {
        fprintf(stderr, "cosignerd: listen: expected HOST:PORT, got \"%s\"\n", c.listen);
        return 2;
    }
    if (check_only) {
        printf("config ok\n");
        for (size_t i = 0; i < NOPTS; i++) {
            const char *p = (const char *)&c + opts[i].off;
            if (opts[i].type == T_STR && !strcmp(opts[i].name, "pg_dsn"))
                printf("%s = %s\n", opts[i].name, dsn_masked(p));
            else if (opts[i].type == T_STR)
                printf("%s = %s\n", opts[i].name, p);
            else {
                uint64_t v;
                memcpy(&v, p, sizeof v);
                printf("%s = %" PRIu64 "\n", opts[i].name, v);
            }
        }
        return 0;
    }
    if (!cx_init()) {
        logkv("error", "crypto_init_failed", NULL);
        return 1;
    }
    /* Signals are taken synchronously by the main thread only: block them
     * before any thread starts so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mkdir(c.data_dir, 0700) != 0 && errno != EEXIST) {
        logkv("error", "data_dir_failed", "path=%s errno=%d reason=%s", KV(c.data_dir), errno,
              KVQ(strerror(errno)));
        return 1;
    }
    char aerr[128];
    int n_admin = parse_admin_keys(c.admin_pubkeys, aerr, sizeof aerr);
    if (n_admin < 0) {
        logkv("error", "config_invalid", "reason=%s", KVQ(aerr));
        return 1;
    }
    if (c.retire_grace_s > 100ull * 366 * 86400) { /* keeps every ms sum in range */
        logkv("error", "config_invalid", "reason=%s", KVQ("retire_grace_s: at most 100 years"));
        return 1;
    }
    uint8_t sk[32], pk[33];
    if (!host_key(c.data_dir, sk, pk)) return 1;

    char err[256] = "";
    store *st = NULL;
    store_options so = {.key_path = *c.master_key ? c.master_key : NULL};
    int clustered = !strcmp(c.store_backend, "postgres");
    char node_id[160], node_url[300];
    if (clustered) {
        char hn[64] = "localhost";
        gethostname(hn, sizeof hn - 1);
        if (*c.node_id)
            snprintf(node_id, sizeof node_id, "%s", c.node_id);
        else
            snprintf(node_id, sizeof node_id, "%s:%u", hn, port);
        if (*c.node_url)
            snprintf(node_url, sizeof node_url, "%s", c.node_url);
        else if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
            logkv("error", "config_invalid", "reason=%s",
                  KVQ("node_url is required when listening on a wildcard address"));
            cx_wipe(sk, sizeof sk);
            return 1;
        } else
            snprintf(node_url, sizeof node_url,
                     strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host, port);
        so.backend = STORE_POSTGRES;
        so.pg_dsn = c.pg_dsn;
        so.node_id = node_id;
        so.node_url = node_url;
        so.lease_ttl_ms = c.lease_ttl_ms;
        so.on_lease_lost = on_lease_lost;
    }
    rt_status s = store_open(c.data_dir, &so, &st, err, sizeof err);
    if (s != RT_OK) {
        logkv("error", "store_open_failed", "backend=%s path=%s status=%s reason=%s",
              c.store_backend, KV(c.data_dir), rt_status_name(s), KVQ(err));
        cx_wipe(sk, sizeof sk);
        return 1;
    }
    net_cluster ncl = {cluster_route, cluster_valid, cluster_reachable, st, {0}};
    if (clustered) {
        /* Every node must be the same ChillDKG participant: the wallets'
         * params name one service host key. The first node records it; a
         * node started with another one refuses to serve. */
        rt_key hk;
        crypto_generichash(hk.b, sizeof hk.b, (const uint8_t *)"cosignerd/cluster/hostpubkey", 28,
                           NULL, 0);
        uint8_t *have = NULL;
        size_t hl = 0;
        s = meta_get(st, &hk, &have, &hl);
        if (s == RT_NOT_FOUND) s = meta_put(st, &hk, pk, 33), hl = 33, have = NULL;
        int same = s == RT_OK && hl == 33 && (!have || !memcmp(have, pk, 33));
        free(have);
        if (!same) {
            logkv("error", "cluster_host_key_mismatch", "status=%s reason=%s", rt_status_name(s),
                  KVQ(s == RT_OK ? "this node's host.key differs from the cluster's: copy the "
                                   "cluster's host.key (and master key) to every node"
                                 : "could not read the cluster's host key"));
            store_close(st);
            cx_wipe(sk, sizeof sk);
            return 1;
        }
        /* Nodes authenticate forwarding with a key only holders of the
         * service's host secret key (every node, no one else) can derive. */
        crypto_generichash(ncl.key, sizeof ncl.key, (const uint8_t *)"cosignerd/cluster/forward",
                           25, sk, 32);
        cluster_store = st;
    }
    commit_lat.inner = store_persist(st);
    commit_lat.outer = (rt_persist){persist_load, persist_save, NULL};

    /* Admission records are MAC'd with a key only holders of the host
     * secret key can derive (every node of a cluster, no one else). */
    uint8_t admission_key[32];
    crypto_generichash(admission_key, sizeof admission_key, (const uint8_t *)"cosignerd/admission",
                       19, sk, 32);
    behaviour_opts bo = {
        .hostseckey = sk,
        .rendezvous_ms = c.rendezvous_deadline_ms,
        .cpu_budget_ms = c.cpu_budget_ms,
        .fault_injection = (int)c.fault_injection,
        .sandbox_pool = c.sandbox_pool,
    };
    const rt_behaviour *beh = NULL;
    s = behaviour_open(&bo, &beh);
    cx_wipe(sk, sizeof sk);
    if (s != RT_OK) {
        logkv("error", "behaviour_failed", "status=%s", rt_status_name(s));
        store_close(st);
        return 1;
    }

    rt_config rc = {
        .workers = (unsigned)c.workers,
        .mailbox_cap = (unsigned)c.mailbox_size,
        .idle_threshold_ms = c.idle_threshold_ms,
        .evict_quantum_ms = c.evict_quantum_ms,
        .tick_interval_ms = c.tick_interval_ms,
        .max_resident = (unsigned)c.max_resident,
        .restart_max = (unsigned)c.restart_max,
        .restart_window_ms = c.restart_window_ms,
        .quarantine_base_ms = c.quarantine_base_ms,
        .behaviour = beh,
        .persist = &commit_lat.outer,
        .on_event = on_rt_event,
    };
    rt_runtime *rt = NULL;
    s = rt_start(&rc, &rt);
    if (s != RT_OK) {
        logkv("error", "runtime_start_failed", "status=%s", rt_status_name(s));
        behaviour_close();
        store_close(st);
        return 1;
    }
    set_lease_rt(rt);

    /* Admission: who may create wallets and who administers. */
    char admin_path[600] = "";
    if (n_admin == 0) {
        /* A fresh install has an operator before it has any config: the
         * bootstrap admin key in the data dir (0600) lets them mint the
         * first enrollment tokens with cosigner-cli. */
        uint8_t ask[32];
        if (*c.admin_key_file)
            snprintf(admin_path, sizeof admin_path, "%s", c.admin_key_file);
        else
            snprintf(admin_path, sizeof admin_path, "%s/admin.key", c.data_dir);
        if (!key_file(c.data_dir, admin_path, 1, ask, admin_keys[0], "admin_key")) {
            rt_stop(rt);
            behaviour_close();
            store_close(st);
            cx_wipe(sk, sizeof sk);
            return 1;
        }
        cx_wipe(ask, sizeof ask);
        n_admin = 1;
        if (clustered)
            logkv("warn", "admin_key_local", "path=%s reason=%s", KV(admin_path),
                  KVQ("no admin_pubkeys: this node trusts only its own bootstrap admin key; set "
                      "admin_pubkeys on every node of a cluster"));
    }
    net_enrollment enroll = !strcmp(c.enrollment, "open")    ? NET_ENROLL_OPEN
                            : !strcmp(c.enrollment, "admin") ? NET_ENROLL_ADMIN
                                                             : NET_ENROLL_TOKEN;

    extra_ctx xc = {st};
    net_config nc = {
        .host = host,
        .port = port,
        .threads = (unsigned)c.http_threads,
        .body_max = c.body_max,
        .header_max = c.header_max,
        .url_max = c.url_max,
        .conn_timeout_s = (unsigned)c.conn_timeout_s,
        .request_max_ms = c.request_timeout_ms,
        .max_connections = (unsigned)c.max_connections,
        .max_per_ip = (unsigned)c.max_per_ip,
        .rendezvous_ms = c.rendezvous_deadline_ms,
        .auth_window_ms = c.auth_window_ms,
        .replay_entries = c.replay_cache_entries,
        .version = CG_VERSION,
        .fault_injection = (int)c.fault_injection,
        .rt = rt,
        .meta = {meta_get, meta_put, meta_cas, meta_list, st},
        .enrollment = enroll,
        .admin_pubkeys = (const uint8_t(*)[33])admin_keys,
        .n_admin_pubkeys = (size_t)n_admin,
        .rate_rps = (double)c.rate_limit_rps,
        .rate_burst = (double)c.rate_limit_burst,
        .auth_fail_rps = (double)c.auth_fail_per_min / 60.0,
        .auth_fail_burst = (double)c.auth_fail_burst,
        .quota_wallets = (unsigned)c.quota_wallets,
        .quota_pending_dkg = (unsigned)c.quota_pending_dkg,
        .max_pending_dkg = (unsigned)c.max_pending_dkg,
        .token_ttl_ms = c.token_ttl_s * 1000,
        .cluster = clustered ? &ncl : NULL,
        .metrics_extra = metrics_extra,
        .metrics_ud = &xc,
        .retire_grace_s = c.retire_grace_s,
    };
    memcpy(nc.hostpubkey, pk, 33);
    memcpy(nc.admission_key, admission_key, 32);
    cx_wipe(admission_key, sizeof admission_key);
    net_server *srv = NULL;
    s = net_start(&nc, &srv);
    if (s != RT_OK) {
        logkv("error", "listen_failed", "listen=%s status=%s", KV(c.listen), rt_status_name(s));
        rt_stop(rt);
        behaviour_close();
        store_close(st);
        return 1;
    }
    net_set_ready(srv, 1);
    char pkh[67];
    net_hex_encode(pkh, pk, 33);
    logkv("info", "started",
          "version=%s listen=%s:%u data_dir=%s store=%s node_id=%s node_url=%s hostpubkey=%s "
          "behaviour=%s workers=%" PRIu64 " idle_threshold_ms=%" PRIu64 " fault_injection=%d",
          CG_VERSION, host, net_port(srv), KV(c.data_dir), store_backend_name(st),
          clustered ? KV(node_id) : "-", clustered ? KV(node_url) : "-", pkh, KV(behaviour_name()),
          c.workers, c.idle_threshold_ms, (int)c.fault_injection);
    {
        char u[128];
        snprintf(u, sizeof u, "http://%s:%u", host, net_port(srv));
        fprintf(stderr, "\ncosignerd is listening on %s (enrollment = %s)\n", u, c.enrollment);
        fprintf(stderr,
                "  try:  curl -s %s/v1/info\n"
                "        cosigner-cli --url %s keygen --out device.key\n",
                u, u);
        if (enroll == NET_ENROLL_OPEN)
            fprintf(stderr,
                    "        cosigner-cli --url %s dkg --key device.key --t 2 --out wallet.json\n",
                    u);
        else if (*admin_path) {
            /* A path is operator text: no control character may start a
             * line that looks like a log event. */
            char shown[sizeof admin_path];
            snprintf(shown, sizeof shown, "%s", admin_path);
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
            fprintf(stderr,
                    "        cosigner-cli --url %s admin enroll --admin-key %s --device-key "
                    "device.key\n"
                    "            (mints a one-time enrollment token for that device; prints "
                    "\"token\")\n"
                    "        cosigner-cli --url %s dkg --key device.key --t 2 --token TOKEN --out "
                    "wallet.json\n",
                    u, shown, u);
        } else
            fprintf(stderr,
                    "        cosigner-cli --url %s admin enroll --admin-key ADMIN_KEY --device-key "
                    "device.key\n"
                    "        cosigner-cli --url %s dkg --key device.key --t 2 --token TOKEN --out "
                    "wallet.json\n",
                    u, u);
        fprintf(stderr,
                "        cosigner-cli --url %s sign --wallet wallet.json --msg 68656c6c6f\n"
                "  metrics: curl -s %s/metrics\n\n",
                u, u);
    }
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s:%u\nMAINPID=%lu", host, net_port(srv),
               (unsigned long)getpid());

    uint64_t wd_us = 0;
    if (sd_watchdog_enabled(0, &wd_us) <= 0) wd_us = 0;
    uint64_t evictions_seen = 0;
    /* Retired wallets: swept at start (a grace may have passed while the
     * daemon was down), then every retire_sweep_ms, never less often than
     * the grace itself (a wipe is late by at most one period). */
    uint64_t sweep_ms = c.retire_sweep_ms ? c.retire_sweep_ms : 60000;
    if (c.retire_grace_s && c.retire_grace_s * 1000 < sweep_ms) sweep_ms = c.retire_grace_s * 1000;
    if (sweep_ms < 100) sweep_ms = 100;
    retire_sweep(st, rt);
    uint64_t next_sweep = rt_now_ms() + sweep_ms;
    for (;;) {
        struct timespec to = {1, 0};
        if (wd_us) {
            uint64_t half = wd_us / 2;
            to.tv_sec = (time_t)(half / 1000000u);
            to.tv_nsec = (long)(half % 1000000u) * 1000;
        }
        uint64_t now_ms = rt_now_ms();
        uint64_t until = next_sweep > now_ms ? next_sweep - now_ms : 0;
        if (until < (uint64_t)to.tv_sec * 1000 + (uint64_t)to.tv_nsec / 1000000) {
            to.tv_sec = (time_t)(until / 1000);
            to.tv_nsec = (long)(until % 1000) * 1000000L;
        }
        int sig = sigtimedwait(&sigs, NULL, &to);
        if (sig == SIGTERM || sig == SIGINT) {
            logkv("info", "stopping", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
            break;
        }
        if (sig == SIGHUP)
            logkv("info", "sighup_ignored", "reason=%s", KVQ("restart to reconfigure"));
        if (wd_us) sd_notify(0, "WATCHDOG=1");
        if (rt_now_ms() >= next_sweep) {
            retire_sweep(st, rt);
            next_sweep = rt_now_ms() + sweep_ms;
        }
        /* Evicted actors free their memory into malloc's free lists, which
         * glibc keeps, and leave their records mapped from the store file;
         * hand both back to the kernel so idle wallets really cost nothing
         * resident. */
        rt_stats rs;
        rt_get_stats(rt, &rs);
        if (rs.evictions != evictions_seen) {
            evictions_seen = rs.evictions;
            malloc_trim(0);
            store_trim(st);
        }
    }
    sd_notify(0, "STOPPING=1");
    unsigned left = net_drain(srv, c.drain_timeout_ms);
    logkv("info", "drained", "in_flight_left=%u", left);
    set_lease_rt(NULL);
    rt_stop(rt);
    /* Hand the wallets to the other nodes now rather than after the ttl. */
    if (clustered) store_lease_release_all(st);
    net_stop(srv);
    behaviour_close();
    store_close(st);
    logkv("info", "stopped", NULL);
    return 0;
}
