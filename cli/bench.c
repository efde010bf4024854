/*
 * bench.c — cosigner-bench, the load generator: N simulated users, each runs
 * a DKG (one device + the service: 2-of-2 by default) then K signing
 * sessions, C users in flight at once, over real HTTP to a running daemon.
 *
 *   cosigner-bench --url URL --users N --concurrency C --sessions K [--json]
 *                  [--devices D] [--fault-rate F]
 *
 * Prints a progress line on stderr while running; at the end one JSON line
 * per figure (--json) or a table, the last JSON line being
 * {"workload":"signing_sessions","users":N,"concurrency":C,"sessions_per_s":X,"p99_ms":Y,
 *  "errors":E,"errors_clean":EC,"errors_faulted":EF,"faulted_users":FU}.
 * Errors are failed operations (a DKG or a signing session), counted by the
 * HTTP status and by the canonical code of the JSON error body (the
 * "errors_by_code" line: HTTP statuses as keys, canonical codes under
 * "codes"; TRANSPORT, NO_CODE, BAD_REPLY, BAD_SIGNATURE and LOCAL for
 * failures without one).
 *
 * --fault-rate F asks the service (fault-injection builds) to inject a
 * handler fault into a fraction F of the users' wallets (after their DKG),
 * to show isolation: errors are counted apart for those users
 * (errors_faulted; faulted_users says how many were chosen) and the others
 * (errors_clean); a fault that leaked into other wallets shows up in
 * errors_clean.
 *
 * --rate R [--duration S] is the open-loop mode (as wrk2 does it): every
 * user first runs its DKG (closed loop, C at once), then signing sessions
 * are started at R per second for S seconds (default 10), each at its
 * scheduled time whether or not earlier ones have completed, on whichever
 * user is free (at most C sessions in flight). A session's latency runs
 * from its *scheduled* start, so time spent waiting for a free user or a
 * free slot counts: a service that falls behind shows it in the tail
 * instead of slowing the load down (no coordinated omission). Prints
 * {"workload":"open_loop","rate":R,...,"p50_ms","p99_ms","p999_ms",...}.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cx.h"
#include "dev.h"
#include "net.h"

typedef struct lat {
    double *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, double ms)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = ms;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* qsort's base must not be NULL, even for no elements: a phase the run
 * never reached (signing rounds in the open loop's DKG pass) has none. */
static void lat_sort(lat *l)
{
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmpd);
}

static double pct(lat *l, double p)
{
    if (!l->n) return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)l->n);
    if (i) i--;
    if (i >= l->n) i = l->n - 1;
    return l->v[i];
}

enum { L_DKG = DEV_PHASES, L_SESSION, L_COUNT };
static const char *const lat_names[L_COUNT] = {"dkg_round1",  "dkg_round2", "sign_round1",
                                               "sign_round2", "dkg",        "session"};

typedef struct user_ctx {
    int sessions_left;
    int inject;
    int ready; /* DKG done: may run open-loop sessions */
    double t0;
} user_ctx;

static struct {
    http_client *hc;
    uint8_t svc[33];
    unsigned users, conc, sessions, devices;
    double fault_rate;
    unsigned started, finished, next;
    unsigned long sessions_ok, errors, faults_injected, faulted_users;
    unsigned long errors_clean, errors_faulted;
    unsigned long err_by_code[600];
    struct {
        char name[32];
        unsigned long n;
    } err_by_name[32]; /* canonical codes seen, in order of first appearance */
    unsigned n_names;
    lat l[L_COUNT];
    double t_start, t_first_sign, t_end;
    dev_user *u;
    user_ctx *c;
    int json;
    /* open loop (--rate) */
    double rate, duration_s, ol_t0;
    unsigned long ol_total, ol_next; /* sessions to schedule; the next one's number */
    unsigned long ol_started, ol_ok, ol_errors;
    unsigned long *ol_queue; /* numbers of the sessions that are due and not started */
    unsigned long ol_qhead, ol_qtail;
    unsigned *ol_free; /* ready users that are not in a session */
    unsigned ol_nfree, ol_inflight;
    lat ol_lat;
    /* enrollment = token on the service: an admin key mints each user's token */
    const char *url;
    int have_admin;
    uint8_t admin_sk[32];
    dev_wallet *pre; /* with have_admin: each user's keys and token, made up front */
    unsigned long mint_failures;
} B;

static void start_user(unsigned i);
static void progress(void *arg);

static void user_finished(void)
{
    B.finished++;
    if (B.next < B.users) start_user(B.next++);
}

#define MAX_NAMES (sizeof B.err_by_name / sizeof B.err_by_name[0])

/* The canonical code of u's failure, as a JSON-safe key: a service that
 * sends anything but [A-Z0-9_] gets "NON_CANONICAL". */
static const char *code_name(const dev_user *u)
{
    const char *n = u->fail_code_name[0] ? u->fail_code_name : "LOCAL";
    for (const char *p = n; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return "NON_CANONICAL";
    return n;
}

static void count_error(dev_user *u, long code)
{
    const user_ctx *c = u->ud;
    B.errors++;
    if (c->inject)
        B.errors_faulted++;
    else
        B.errors_clean++;
    B.err_by_code[code >= 0 && code < 600 ? code : 0]++;
    const char *name = code_name(u);
    unsigned i = 0;
    while (i < B.n_names && strcmp(B.err_by_name[i].name, name))
        i++;
    if (i == B.n_names) {
        if (B.n_names == MAX_NAMES) {
            i = MAX_NAMES - 1; /* full: the last slot collects the rest */
            name = "OTHER";
        } else {
            B.n_names++;
        }
        snprintf(B.err_by_name[i].name, sizeof B.err_by_name[i].name, "%s", name);
    }
    B.err_by_name[i].n++;
}

static void next_session(dev_user *u);

static void on_phase(dev_user *u, dev_phase ph, double ms)
{
    (void)u;
    lat_add(&B.l[ph], ms);
}

static void on_sign(dev_user *u, int ok, long code, const char *msg)
{
    user_ctx *c = u->ud;
    if (ok) {
        B.sessions_ok++;
        lat_add(&B.l[L_SESSION], dev_now_ms() - c->t0);
    } else {
        count_error(u, code);
        if (B.errors <= 5) fprintf(stderr, "\ncosigner-bench: session failed: %s\n", msg);
    }
    next_session(u);
}

static void next_session(dev_user *u)
{
    user_ctx *c = u->ud;
    if (c->sessions_left-- <= 0) {
        dev_user_release(u);
        user_finished();
        return;
    }
    uint8_t msg[32];
    cx_random(msg, sizeof msg);
    uint32_t ids[DEV_MAX_N];
    size_t n = 0;
    for (uint32_t i = 0; i < u->w.n && n < u->w.t; i++)
        ids[n++] = i; /* service is 0 */
    if (!B.t_first_sign) B.t_first_sign = dev_now_ms();
    c->t0 = dev_now_ms();
    u->done = on_sign;
    dev_sign(u, ids, n, msg, sizeof msg, 1, NULL);
}

static void on_fault(void *arg, long code, json_t *resp, const char *err)
{
    (void)resp;
    (void)err;
    dev_user *u = arg;
    if (code == 500 || code == 200) B.faults_injected++;
    next_session(u);
}

static void on_dkg(dev_user *u, int ok, long code, const char *msg)
{
    user_ctx *c = u->ud;
    if (!ok) {
        count_error(u, code);
        if (B.errors <= 5) fprintf(stderr, "\ncosigner-bench: DKG failed: %s\n", msg);
        user_finished();
        return;
    }
    lat_add(&B.l[L_DKG], dev_now_ms() - c->t0);
    c->ready = 1;
    if (c->inject) {
        char path[128], wid[65];
        net_hex_encode(wid, u->w.wallet_id, 32);
        snprintf(path, sizeof path, "/v1/wallets/%s/fault", wid);
        http_request(B.hc, "POST", path, json_pack("{s:s}", "kind", "trap"), u->w.seckey[1],
                     on_fault, u);
        return;
    }
    next_session(u);
}

static void start_user(unsigned i)
{
    dev_user *u = &B.u[i];
    user_ctx *c = &B.c[i];
    B.started++;
    memset(u, 0, sizeof *u);
    u->hc = B.hc;
    u->ud = c;
    u->on_phase = on_phase;
    u->done = on_dkg;
    c->sessions_left = (int)B.sessions;
    /* spread the faulty users evenly over the run */
    c->inject =
        B.fault_rate > 0 && (double)((i * 2654435761u >> 8) % 1000u) < B.fault_rate * 1000.0;
    if (c->inject) B.faulted_users++;
    c->t0 = dev_now_ms();
    dev_wallet_init(&u->w, B.devices + 1, B.devices + 1, 0, B.svc);
    for (uint32_t k = 1; k <= B.devices; k++) {
        u->w.is_dev[k] = 1;
        if (!B.have_admin) {
            dev_keygen(u->w.seckey[k], u->w.hostpk[k]);
        } else {
            memcpy(u->w.seckey[k], B.pre[i].seckey[k], 32);
            memcpy(u->w.hostpk[k], B.pre[i].hostpk[k], 33);
        }
    }
    if (B.have_admin) memcpy(u->w.token, B.pre[i].token, sizeof u->w.token);
    dev_dkg(u);
}

/* ---- open loop ---------------------------------------------------------- */

static double ol_due_ms(unsigned long k)
{
    return B.ol_t0 + (double)k * 1000.0 / B.rate;
}

static void ol_on_sign(dev_user *u, int ok, long code, const char *msg)
{
    user_ctx *c = u->ud;
    if (ok) {
        B.ol_ok++;
        lat_add(&B.ol_lat, dev_now_ms() - c->t0); /* c->t0 is the scheduled start */
    } else {
        B.ol_errors++;
        count_error(u, code);
        if (B.ol_errors <= 5) fprintf(stderr, "\ncosigner-bench: session failed: %s\n", msg);
    }
    dev_user_release(u);
    B.ol_inflight--;
    B.ol_free[B.ol_nfree++] = (unsigned)(u - B.u);
}

static void ol_start(unsigned i, double due)
{
    dev_user *u = &B.u[i];
    user_ctx *c = &B.c[i];
    uint8_t msg[32];
    cx_random(msg, sizeof msg);
    uint32_t ids[DEV_MAX_N];
    size_t n = 0;
    for (uint32_t k = 0; k < u->w.n && n < u->w.t; k++)
        ids[n++] = k;
    c->t0 = due;
    u->done = ol_on_sign;
    B.ol_inflight++;
    B.ol_started++;
    dev_sign(u, ids, n, msg, sizeof msg, 1, NULL);
}

/* http_run_sched's scheduler: queue what is due, start what can start. */
static int ol_sched(void *arg)
{
    (void)arg;
    double now = dev_now_ms();
    while (B.ol_next < B.ol_total && ol_due_ms(B.ol_next) <= now)
        B.ol_queue[B.ol_qtail++] = B.ol_next++;
    while (B.ol_qhead < B.ol_qtail && B.ol_nfree && B.ol_inflight < B.conc) {
        unsigned i = B.ol_free[--B.ol_nfree];
        ol_start(i, ol_due_ms(B.ol_queue[B.ol_qhead++]));
    }
    progress(NULL);
    if (B.ol_next < B.ol_total) {
        double w = ol_due_ms(B.ol_next) - dev_now_ms();
        return w <= 0 ? 0 : w >= 100 ? 100 : (int)ceil(w);
    }
    return B.ol_qhead < B.ol_qtail ? 100 : -1;
}

static void open_loop(void)
{
    B.ol_total = (unsigned long)(B.rate * B.duration_s + 0.5);
    B.ol_queue = calloc(B.ol_total ? B.ol_total : 1, sizeof *B.ol_queue);
    B.ol_free = calloc(B.users, sizeof *B.ol_free);
    for (unsigned i = 0; i < B.users; i++)
        if (B.c[i].ready) B.ol_free[B.ol_nfree++] = i;
    unsigned ready = B.ol_nfree;
    B.ol_t0 = dev_now_ms();
    if (ready)
        http_run_sched(B.hc, ol_sched, NULL);
    else
        fprintf(stderr, "cosigner-bench: no wallet completed its DKG: no session started\n");
    double el = (dev_now_ms() - B.ol_t0) / 1000.0;
    lat_sort(&B.ol_lat);
    /* Sessions never started (no wallet) are failures of the run too. */
    unsigned long lost = B.ol_total - B.ol_started;
    B.errors += lost;
    printf("{\"workload\":\"open_loop\",\"rate\":%.1f,\"duration_s\":%.1f,\"users\":%u,"
           "\"wallets\":%u,\"max_in_flight\":%u,\"offered\":%lu,\"completed\":%lu,"
           "\"achieved_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
           "\"max_ms\":%.3f,\"errors\":%lu}\n",
           B.rate, B.duration_s, B.users, ready, B.conc, B.ol_total, B.ol_ok,
           el > 0 ? (double)B.ol_ok / el : 0.0, pct(&B.ol_lat, 50), pct(&B.ol_lat, 99),
           pct(&B.ol_lat, 99.9), B.ol_lat.n ? B.ol_lat.v[B.ol_lat.n - 1] : 0.0, B.ol_errors + lost);
    free(B.ol_queue);
    free(B.ol_free);
    free(B.ol_lat.v);
}

static void progress(void *arg)
{
    (void)arg;
    static double last;
    double now = dev_now_ms();
    if (now - last < 1000) return;
    last = now;
    double el = (now - B.t_start) / 1000.0;
    if (B.ol_t0)
        fprintf(stderr,
                "\r[%6.1fs] open loop: %lu/%lu started, %lu ok, %u in flight, %lu errors   ", el,
                B.ol_started, B.ol_total, B.ol_ok, B.ol_inflight, B.errors);
    else
        fprintf(stderr, "\r[%6.1fs] users %u/%u done, %lu sessions (%.0f/s), %lu errors   ", el,
                B.finished, B.users, B.sessions_ok, el > 0 ? (double)B.sessions_ok / el : 0.0,
                B.errors);
}

/* The closed loop's figures: phases, errors by code, the summary line. */
static void closed_loop_report(void)
{
    double sign_s = (B.t_end - (B.t_first_sign ? B.t_first_sign : B.t_start)) / 1000.0;
    double rate = sign_s > 0 ? (double)B.sessions_ok / sign_s : 0;
    if (!B.json) {
        printf("%-12s %8s %9s %9s %9s %9s\n", "phase", "count", "p50_ms", "p95_ms", "p99_ms",
               "max_ms");
        for (int k = 0; k < L_COUNT; k++)
            printf("%-12s %8zu %9.2f %9.2f %9.2f %9.2f\n", lat_names[k], B.l[k].n, pct(&B.l[k], 50),
                   pct(&B.l[k], 95), pct(&B.l[k], 99), B.l[k].n ? B.l[k].v[B.l[k].n - 1] : 0.0);
        printf("sessions: %lu ok in %.2f s (%.0f/s), errors: %lu", B.sessions_ok, sign_s, rate,
               B.errors);
        for (int c = 0; c < 600; c++)
            if (B.err_by_code[c]) printf(" [%d: %lu]", c, B.err_by_code[c]);
        for (unsigned k = 0; k < B.n_names; k++)
            printf(" [%s: %lu]", B.err_by_name[k].name, B.err_by_name[k].n);
        if (B.fault_rate > 0)
            printf(", faults injected: %lu (%lu users chosen); errors of clean users: %lu, of "
                   "faulted users: %lu",
                   B.faults_injected, B.faulted_users, B.errors_clean, B.errors_faulted);
        printf("\n");
    }
    for (int k = 0; k < L_COUNT; k++)
        printf("{\"workload\":\"phase_latency\",\"phase\":\"%s\",\"count\":%zu,\"p50_ms\":%.3f,"
               "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               lat_names[k], B.l[k].n, pct(&B.l[k], 50), pct(&B.l[k], 95), pct(&B.l[k], 99),
               B.l[k].n ? B.l[k].v[B.l[k].n - 1] : 0.0);
    printf("{\"workload\":\"errors_by_code\"");
    for (int c = 0; c < 600; c++)
        if (B.err_by_code[c]) printf(",\"%d\":%lu", c, B.err_by_code[c]);
    printf(",\"codes\":{");
    for (unsigned k = 0; k < B.n_names; k++) /* names are [A-Z_]: no JSON escaping */
        printf("%s\"%s\":%lu", k ? "," : "", B.err_by_name[k].name, B.err_by_name[k].n);
    printf("},\"faults_injected\":%lu}\n", B.faults_injected);
    printf("{\"workload\":\"signing_sessions\",\"users\":%u,\"concurrency\":%u,"
           "\"sessions_per_s\":%.1f,\"p99_ms\":%.3f,\"errors\":%lu,\"errors_clean\":%lu,"
           "\"errors_faulted\":%lu,\"faulted_users\":%lu}\n",
           B.users, B.conc, rate, pct(&B.l[L_SESSION], 99), B.errors, B.errors_clean,
           B.errors_faulted, B.faulted_users);
}

int main(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:7074";
    B.users = 100;
    B.conc = 16;
    B.sessions = 10;
    B.devices = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            B.json = 1;
            continue;
        }
        if (!strcmp(a, "--help")) {
            printf("Usage: cosigner-bench --url URL --users N --concurrency C --sessions K "
                   "[--admin-key F] "
                   "[--devices D] [--fault-rate F] [--json]\n"
                   "       cosigner-bench --url URL --users N --concurrency C --rate R "
                   "[--duration S] [--devices D]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "cosigner-bench: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--url"))
            url = v;
        else if (!strcmp(a, "--users"))
            B.users = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--concurrency"))
            B.conc = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--sessions"))
            B.sessions = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--devices"))
            B.devices = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--fault-rate"))
            B.fault_rate = strtod(v, NULL);
        else if (!strcmp(a, "--rate"))
            B.rate = strtod(v, NULL);
        else if (!strcmp(a, "--duration"))
            B.duration_s = strtod(v, NULL);
        else if (!strcmp(a, "--admin-key")) {
            uint8_t apk[33];
            if (!admin_read_key(v, B.admin_sk, apk)) {
                fprintf(stderr, "cosigner-bench: cannot read the admin key %s\n", v);
                return 2;
            }
            B.have_admin = 1;
        } else {
            fprintf(stderr, "cosigner-bench: unknown option %s (try --help)\n", a);
            return 2;
        }
    }
    if (!B.users || !B.conc || B.devices < 1 || B.devices > DEV_MAX_N - 1) {
        fprintf(stderr, "cosigner-bench: users, concurrency must be > 0, devices 1..31\n");
        return 2;
    }
    if (B.rate < 0 || B.duration_s < 0 || (B.duration_s > 0 && B.rate == 0) ||
        B.rate * (B.duration_s ? B.duration_s : 10) > 1e8 || (B.rate > 0 && B.fault_rate > 0)) {
        fprintf(stderr, "cosigner-bench: --rate R > 0 (with --duration S, R*S <= 1e8), and not "
                        "with --fault-rate\n");
        return 2;
    }
    if (B.rate > 0) {
        if (!B.duration_s) B.duration_s = 10;
        B.sessions = 0; /* the closed loop runs the DKGs only */
    }
    if (!cx_init()) return 1;
    json_t *info = NULL;
    if (http_get_json(url, "/v1/info", &info) != 200 || !info ||
        !net_hex_decode(B.svc, 33, json_string_value(json_object_get(info, "hostpubkey")) ?: "",
                        66)) {
        fprintf(stderr, "cosigner-bench: cannot reach %s/v1/info\n", url);
        return 1;
    }
    json_decref(info);
    B.u = calloc(B.users, sizeof *B.u);
    B.c = calloc(B.users, sizeof *B.c);
    /* One connection per concurrent request: every device of every user in
     * flight may be parked in a rendezvous at the same time. */
    B.url = url;
    if (B.have_admin) {
        /* Every user's keys and enrollment token before the clock starts,
         * as an operator enrolls devices ahead of use: minting inside the
         * run would block this event loop and be measured as service time. */
        B.pre = calloc(B.users, sizeof *B.pre);
        if (!B.pre) {
            fprintf(stderr, "cosigner-bench: out of memory\n");
            return 1;
        }
        for (unsigned i = 0; i < B.users; i++) {
            dev_wallet *w = &B.pre[i];
            for (uint32_t k = 1; k <= B.devices; k++)
                dev_keygen(w->seckey[k], w->hostpk[k]);
            char err[300];
            if (!admin_mint_token(url, B.admin_sk, (const uint8_t(*)[33])w->hostpk[1], B.devices,
                                  w->token, err, sizeof err)) {
                B.mint_failures++;
                w->token[0] = 0; /* the DKG is then refused and counted as an error */
            }
        }
    }
    B.hc = http_new(url, B.conc * (B.devices + 1));
    B.t_start = dev_now_ms();
    for (; B.next < B.users && B.next < B.conc; B.next++)
        start_user(B.next);
    http_run(B.hc, progress, NULL);
    B.t_end = dev_now_ms();
    fprintf(stderr, "\n");
    for (int k = 0; k < L_COUNT; k++)
        lat_sort(&B.l[k]);
    if (B.rate > 0) {
        printf("{\"workload\":\"phase_latency\",\"phase\":\"dkg\",\"count\":%zu,\"p50_ms\":%.3f,"
               "\"p99_ms\":%.3f}\n",
               B.l[L_DKG].n, pct(&B.l[L_DKG], 50), pct(&B.l[L_DKG], 99));
        open_loop();
        fprintf(stderr, "\n");
    } else {
        closed_loop_report();
    }
    http_free(B.hc);
    for (int k = 0; k < L_COUNT; k++)
        free(B.l[k].v);
    cx_wipe(B.u, B.users * sizeof *B.u);
    free(B.u);
    free(B.c);
    return B.errors ? 1 : 0;
}
