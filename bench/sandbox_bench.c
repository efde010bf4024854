/*
 * sandbox_bench — costs of the guest sandbox, one JSON line per figure:
 *   guest_call       a trivial export through the trap boundary
 *   activation       instantiate + restore of a small record (and teardown),
 *                    cold (no instance pool); activation_pooled: the same
 *                    with every closed instance pooled (the warm path)
 *   idle_memory      RSS per resident idle instance, over 100k instances
 *   budget_overhead  CPU-budget instrumentation on a loop-heavy guest function
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sbx.h"

extern const sbx_module sbx_module_testguest;
extern const sbx_module sbx_module_testguest_nofuel;
#if SBX_BENCH_COSIGNER
extern const sbx_module sbx_module_cosigner;
#endif

/* Thread CPU time: the machine is shared, and time spent descheduled is not
 * the sandbox's cost. Every figure is the best of several rounds. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

static sbx_instance *open_or_die(const sbx_config *c, const void *rec, size_t len)
{
    sbx_instance *in = NULL;
    if (sbx_open(c, rec, len, &in) != RT_OK) {
        fprintf(stderr, "sbx_open failed\n");
        exit(1);
    }
    return in;
}

static void guest_call(const sbx_config *c)
{
    sbx_instance *in = open_or_die(c, NULL, 0);
    uint32_t r;
    const long n = 4000000;
    double best = 1e9;
    for (int round = 0; round < 6; round++) {
        double t0 = now_s();
        for (long i = 0; i < n; i++)
            if (sbx_bench(in, 0, &r) != RT_OK) exit(1);
        double t = now_s() - t0;
        if (round && t < best) best = t; /* round 0 warms up */
    }
    printf("{\"workload\":\"guest_call\",\"ns_per_call\":%.1f}\n", best * 1e9 / (double)n);
    sbx_close(in);
}

/* rec: a small durable record the module accepts; label names the module. */
static void activation(const sbx_config *c, const void *rec, size_t rec_len, const char *label)
{
    enum { BATCH = 10000, ROUNDS = 10 };
    static sbx_instance *ins[BATCH];
    double t_open = 1e9, t_close = 1e9;
    for (int r = 0; r < ROUNDS + 1; r++) {
        double t0 = now_s();
        for (int i = 0; i < BATCH; i++)
            ins[i] = open_or_die(c, rec, rec_len);
        double t1 = now_s();
        for (int i = 0; i < BATCH; i++)
            sbx_close(ins[i]);
        double t2 = now_s();
        if (r) { /* round 0 warms the pool */
            if (t1 - t0 < t_open) t_open = t1 - t0;
            if (t2 - t1 < t_close) t_close = t2 - t1;
        }
    }
    printf("{\"workload\":\"activation%s\",\"us_per_activation\":%.2f,\"us_per_teardown\":%.2f}\n",
           label, t_open * 1e6 / BATCH, t_close * 1e6 / BATCH);
}

/* cmd: one request each resident actor has served (len 0: none). */
static void idle_memory(const sbx_config *c, const void *rec, size_t rec_len, const void *cmd,
                        size_t cmd_len, const char *label)
{
    enum { N = 100000 };
    sbx_instance **ins = malloc(N * sizeof *ins);
    long rss0 = status_kb("VmRSS"), pte0 = status_kb("VmPTE");
    for (int i = 0; i < N; i++) {
        ins[i] = open_or_die(c, rec, rec_len);
        rt_reply r;
        if (cmd_len && sbx_call(ins[i], cmd, cmd_len, 0, &r) != RT_OK) exit(1);
        if (cmd_len) free(r.data);
    }
    long rss1 = status_kb("VmRSS"), pte1 = status_kb("VmPTE");
    printf(
        "{\"workload\":\"idle_memory%s\",\"bytes_per_actor\":%.0f,\"page_table_bytes_per_actor\":"
        "%.0f,\"actors\":%d}\n",
        label, (double)(rss1 - rss0) * 1024 / N, (double)(pte1 - pte0) * 1024 / N, N);
    for (int i = 0; i < N; i++)
        sbx_close(ins[i]);
    free(ins);
}

static double loop_time(const sbx_config *c, uint32_t n, uint32_t *h)
{
    sbx_instance *in = open_or_die(c, NULL, 0);
    double best = 1e9;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = now_s();
        if (sbx_bench(in, n, h) != RT_OK) exit(1);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    sbx_close(in);
    return best;
}

/* overhead_pct: a loop-heavy function (one loop header per byte hashed).
 * call_heavy_pct: naive fib, one function entry per three instructions of
 * work: the worst case, because the uninstrumented build lets the compiler
 * inline the recursion into itself, which a fuel decrement per call blocks. */
static void budget_overhead(const sbx_config *fuel, const sbx_config *nofuel)
{
    const uint32_t loop_n = 4000;             /* 16M loop iterations */
    const uint32_t call_n = 0x80000000u | 30; /* ~2.7M calls */
    uint32_t h1, h2, f1, f2;
    double l_nofuel = loop_time(nofuel, loop_n, &h1);
    double l_fuel = loop_time(fuel, loop_n, &h2);
    double c_nofuel = loop_time(nofuel, call_n, &f1);
    double c_fuel = loop_time(fuel, call_n, &f2);
    if (h1 != h2 || f1 != f2) exit(1);
    double lp = (l_fuel / l_nofuel - 1) * 100, cp = (c_fuel / c_nofuel - 1) * 100;
    printf("{\"workload\":\"budget_overhead\",\"overhead_pct\":%.1f,\"call_heavy_pct\":%.1f}\n", lp,
           cp);
}

/* The daemon's default sandbox_pool: the idle figures run with it, the pool
 * warmed first, so they include what the pool pins. */
#define DAEMON_POOL 64

/* The before/after pair: the same workload with the pool off, then with a
 * pool that can hold every instance of a batch. Drained after, so the next
 * figure starts from a cold process again. */
static void activation_pair(const sbx_config *c, const void *rec, size_t rec_len, const char *label)
{
    char pooled[64];
    sbx_config cold = *c, warm = *c;
    cold.pool_slots = 0;
    warm.pool_slots = 10000;
    activation(&cold, rec, rec_len, label);
    snprintf(pooled, sizeof pooled, "%s_pooled", label);
    activation(&warm, rec, rec_len, pooled);
    sbx_pool_drain();
}

static void warm_pool(const sbx_config *c, const void *rec, size_t rec_len)
{
    static sbx_instance *ins[DAEMON_POOL];
    for (int i = 0; i < DAEMON_POOL; i++)
        ins[i] = open_or_die(c, rec, rec_len);
    for (int i = 0; i < DAEMON_POOL; i++)
        sbx_close(ins[i]);
}

int main(void)
{
    sbx_config c = {.module = &sbx_module_testguest, .pool_slots = DAEMON_POOL};
    sbx_config nf = {.module = &sbx_module_testguest_nofuel};
    uint64_t counter = 42;
    guest_call(&c);
    activation_pair(&c, &counter, sizeof counter, "");
    /* Resident actors have served a request: one each. */
    warm_pool(&c, &counter, sizeof counter);
    idle_memory(&c, &counter, sizeof counter, "c", 1, "");
    budget_overhead(&c, &nf);
#if SBX_BENCH_COSIGNER
    /* The real module: its record after a fresh start, one (refused) command. */
    static uint8_t hostkey[32] = {1};
    sbx_config cs = {.module = &sbx_module_cosigner, .hostkey = hostkey, .pool_slots = DAEMON_POOL};
    sbx_instance *in = open_or_die(&cs, NULL, 0);
    uint8_t *rec;
    size_t rec_len;
    if (sbx_snapshot(in, &rec, &rec_len) != RT_OK) exit(1);
    sbx_close(in);
    activation_pair(&cs, rec, rec_len, "_cosigner");
    warm_pool(&cs, rec, rec_len);
    idle_memory(&cs, rec, rec_len, "\x01", 1, "_cosigner");
    free(rec);
#endif
    return 0;
}
