/*
 * net_metrics.c — request counters and latency histograms, lock-free.
 *
 * Fixed arrays indexed by route and HTTP code: the label sets are known at
 * compile time, so a request costs a few relaxed atomic adds and /metrics
 * never allocates per label.
 */
#include <stddef.h>
#include "net_int.h"

const char *const net_route_names[NET_R_COUNT_] = {
    [NET_R_UNKNOWN] = "unknown",
    [NET_R_INFO] = "info",
    [NET_R_HEALTHZ] = "healthz",
    [NET_R_READYZ] = "readyz",
    [NET_R_METRICS] = "metrics",
    [NET_R_DKG1] = "dkg_round1",
    [NET_R_DKG2] = "dkg_round2",
    [NET_R_SIGN1] = "sign_round1",
    [NET_R_SIGN2] = "sign_round2",
    [NET_R_WALLET] = "wallet",
    [NET_R_FAULT] = "fault",
    [NET_R_ADM_TOKENS] = "admin_token_mint",
    [NET_R_ADM_REVOKE] = "admin_token_revoke",
    [NET_R_ADM_GRANT] = "admin_enrollment_grant",
    [NET_R_ADM_WALLETS] = "admin_wallet_list",
    [NET_R_ADM_WALLET] = "admin_wallet",
    [NET_R_ADM_AUDIT] = "admin_audit_list",
    [NET_R_RECOVERY] = "recovery",
    [NET_R_RESTORE] = "restore",
    [NET_R_RETIRE] = "retire",
};

static const unsigned http_codes[NET_HTTP_CODES] = {200, 400, 401, 403, 404, 405, 409, 412, 413,
                                                    414, 429, 431, 500, 501, 503, 504, 0};
/* Upper bounds in ms; the last bucket of the exposition is +Inf. */
static const double bounds_ms[NET_HIST_BUCKETS] = {0.5, 1,   2.5, 5,    10,   25,    50,
                                                   100, 250, 500, 1000, 2500, 10000, 30000};

static unsigned code_index(unsigned http)
{
    for (unsigned i = 0; i + 1 < NET_HTTP_CODES; i++)
        if (http_codes[i] == http) return i;
    return NET_HTTP_CODES - 1; /* "other" */
}

void net_metrics_observe(net_metrics *m, int route, unsigned http, uint64_t us)
{
    if (route < 0 || route >= NET_R_COUNT_) route = NET_R_UNKNOWN;
    unsigned c = code_index(http);
    atomic_fetch_add_explicit(&m->count[route][c], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us[route][c], us, memory_order_relaxed);
    for (unsigned b = 0; b < NET_HIST_BUCKETS; b++)
        if ((double)us <= bounds_ms[b] * 1000.0) {
            atomic_fetch_add_explicit(&m->bucket[route][c][b], 1, memory_order_relaxed);
            break;
        }
}

static const char *const auth_fail_names[NET_AF_COUNT_] = {
    [NET_AF_MISSING] = "missing",
    [NET_AF_MALFORMED] = "malformed",
    [NET_AF_BAD_SIG] = "bad_signature",
    [NET_AF_STALE] = "stale_timestamp",
    [NET_AF_REPLAY] = "replay",
    [NET_AF_NOT_PARTICIPANT] = "not_participant",
    [NET_AF_CACHE_FULL] = "replay_cache_full",
};

void net_metrics_write(net_metrics *m, FILE *out)
{
    fprintf(out, "# HELP cosignerd_http_request_duration_seconds HTTP request latency by route "
                 "and status code.\n"
                 "# TYPE cosignerd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < NET_R_COUNT_; r++)
        for (unsigned c = 0; c < NET_HTTP_CODES; c++) {
            uint64_t n = atomic_load_explicit(&m->count[r][c], memory_order_relaxed);
            if (!n) continue;
            char code[16];
            if (http_codes[c])
                snprintf(code, sizeof code, "%u", http_codes[c]);
            else
                snprintf(code, sizeof code, "other");
            uint64_t cum = 0;
            for (unsigned b = 0; b < NET_HIST_BUCKETS; b++) {
                cum += atomic_load_explicit(&m->bucket[r][c][b], memory_order_relaxed);
                fprintf(out,
                        "cosignerd_http_request_duration_seconds_bucket{route=\"%s\",code=\"%s\","
                        "le=\"%g\"} %llu\n",
                        net_route_names[r], code, bounds_ms[b] / 1000.0, (unsigned long long)cum);
            }
            fprintf(out,
                    "cosignerd_http_request_duration_seconds_bucket{route=\"%s\",code=\"%s\","
                    "le=\"+Inf\"} %llu\n",
                    net_route_names[r], code, (unsigned long long)n);
            fprintf(out,
                    "cosignerd_http_request_duration_seconds_sum{route=\"%s\",code=\"%s\"} %.6f\n",
                    net_route_names[r], code,
                    (double)atomic_load_explicit(&m->sum_us[r][c], memory_order_relaxed) / 1e6);
            fprintf(out,
                    "cosignerd_http_request_duration_seconds_count{route=\"%s\",code=\"%s\"} "
                    "%llu\n",
                    net_route_names[r], code, (unsigned long long)n);
        }
    fprintf(out, "# HELP cosignerd_auth_failures_total Requests refused by authentication or "
                 "authorization, by reason.\n# TYPE cosignerd_auth_failures_total counter\n");
    for (int i = 0; i < NET_AF_COUNT_; i++)
        fprintf(out, "cosignerd_auth_failures_total{reason=\"%s\"} %llu\n", auth_fail_names[i],
                (unsigned long long)atomic_load(&m->auth_fail[i]));
    fprintf(out,
            "# HELP cosignerd_http_connections_total Connections accepted.\n"
            "# TYPE cosignerd_http_connections_total counter\n"
            "cosignerd_http_connections_total %llu\n"
            "# HELP cosignerd_http_connections_refused_total Requests refused over the "
            "connection limit.\n"
            "# TYPE cosignerd_http_connections_refused_total counter\n"
            "cosignerd_http_connections_refused_total %llu\n"
            "# HELP cosignerd_http_slow_uploads_total Connections closed for exceeding the "
            "upload time limit.\n"
            "# TYPE cosignerd_http_slow_uploads_total counter\n"
            "cosignerd_http_slow_uploads_total %llu\n",
            (unsigned long long)atomic_load(&m->connections_total),
            (unsigned long long)atomic_load(&m->connections_refused),
            (unsigned long long)atomic_load(&m->slow_uploads));
    static const struct {
        const char *name, *help;
        size_t off;
    } cl[] = {
        {"cluster_forwarded_total", "Requests forwarded to the node holding the wallet's lease.",
         offsetof(net_metrics, forwarded)},
        {"cluster_forward_failures_total", "Forwarded requests whose owner node did not answer.",
         offsetof(net_metrics, forward_failures)},
        {"cluster_hop_refusals_total",
         "Forwarded requests for a wallet this node does not hold either (not forwarded again).",
         offsetof(net_metrics, hop_refusals)},
        {"cluster_forward_auth_failures_total",
         "Requests with an invalid X-Cosigner-Forwarded signature.",
         offsetof(net_metrics, forward_auth_failures)},
        {"cluster_lease_gate_refusals_total",
         "Replies withheld because the wallet's lease was lost while it was served.",
         offsetof(net_metrics, lease_gate_refusals)},
    };
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++)
        fprintf(out, "# HELP cosignerd_%s %s\n# TYPE cosignerd_%s counter\ncosignerd_%s %llu\n",
                cl[i].name, cl[i].help, cl[i].name, cl[i].name,
                (unsigned long long)atomic_load((_Atomic uint64_t *)((char *)m + cl[i].off)));
}
