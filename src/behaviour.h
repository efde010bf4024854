/*
 * behaviour.h — which code the wallet actors run, as chosen by the daemon.
 *
 * Production: the cosigner guest compiled to wasm32 and run in the sandbox
 * (one linear memory per actor). When the sandbox is not built, the same
 * cosigner C code linked natively (no memory isolation between wallets; the
 * daemon says so in its start-up log).
 */
#ifndef COSIGNERD_BEHAVIOUR_H
#define COSIGNERD_BEHAVIOUR_H

#include <stdint.h>
#include <stdio.h>

#include "rt.h"

typedef struct behaviour_opts {
    const uint8_t *hostseckey; /* 32 bytes, borrowed; copied into each instance */
    uint64_t rendezvous_ms;
    uint64_t cpu_budget_ms;
    int fault_injection;
    uint64_t sandbox_pool; /* closed instances kept for reuse (sbx_config.pool_slots) */
} behaviour_opts;

/* Ownership: *out stays valid until behaviour_close(). */
rt_status behaviour_open(const behaviour_opts *o, const rt_behaviour **out);
void behaviour_close(void);
const char *behaviour_name(void);
/* Appends the behaviour's own metrics (e.g. sandbox traps by kind). */
void behaviour_metrics(FILE *out);

#endif
