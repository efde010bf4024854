/*
 * cg_cosigner.h — the cosigner actor: one wallet's guest logic.
 *
 * Owns: the wallet's durable state (the service's ChillDKG output and
 * recovery data) and its transient sessions (one DKG, up to
 * CG_MAX_SIGN_SESSIONS BIP 445 signing sessions), the rendezvous that holds
 * device requests until every device of a round has posted, expiry of
 * abandoned sessions, and the versioned snapshot record.
 *
 * The service is the ChillDKG coordinator and one participant (its index is
 * the position of its host public key in the params) and the BIP 445
 * coordinator and one signer; devices are the other participants.
 *
 * All state lives in a cg_actor, so natively one process may hold many
 * (tests, a sandbox-free fallback). In the wasm32 build (cg_wasm.c) one
 * global actor backs the exports of cg_abi.h, plus
 *     cg_configure(ptr, len) -> rt_status   (optional, before cg_restore)
 * which takes the host-only configuration record of cg_cmd.h (rendezvous
 * deadline, fault injection). Natively the host imports are a cg_host
 * vtable passed to each call; they are valid only during that call.
 *
 * Replies and parking follow rt.h: every client command is either answered
 * (host->reply) or parked (host->park) before cg_actor_handle() returns,
 * unless it returns non-OK, which is a handler fault (the host answers
 * INTERNAL and must rebuild the actor from its last durable record). When
 * durable state changes the actor calls host->mark_dirty() before any reply
 * that depends on it, so the host commits the record first.
 */
#ifndef CG_COSIGNER_H
#define CG_COSIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "rt_status.h"

/* Concurrent signing sessions per wallet; one more is RESOURCE_EXHAUSTED. */
#define CG_MAX_SIGN_SESSIONS 16
/* Parked waiters per session (a device may retry while parked). */
#define CG_MAX_WAITERS 64

typedef struct cg_host {
    void (*reply)(void *ctx, int32_t st, const void *data, uint32_t len, uint64_t blame);
    uint64_t (*park)(void *ctx, uint64_t deadline_ms);
    int32_t (*complete)(void *ctx, uint64_t id, int32_t st, const void *data, uint32_t len,
                        uint64_t blame);
    void (*mark_dirty)(void *ctx);
    void (*snapshot_out)(void *ctx, const void *data, uint32_t len);
} cg_host;

typedef struct cg_actor cg_actor;

/* Ownership: *out is the caller's, released with cg_actor_free() (which
 * wipes every secret). RT_RESOURCE_EXHAUSTED when memory is short. */
rt_status cg_actor_new(cg_actor **out);
void cg_actor_free(cg_actor *a);

/* Mirrors of the exports; see cg_abi.h for their order. */
rt_status cg_actor_init(cg_actor *a);
rt_status cg_actor_configure(cg_actor *a, const uint8_t *cfg, size_t len);
rt_status cg_actor_set_hostkey(cg_actor *a, const uint8_t hostseckey[32]);
/* rec/len 0 = no record. Refuses (RT_DATA_LOSS) a record that does not
 * parse, is inconsistent, or belongs to another host key. */
rt_status cg_actor_restore(cg_actor *a, const uint8_t *rec, size_t len);
rt_status cg_actor_handle(cg_actor *a, const cg_host *h, void *hctx, const uint8_t *cmd, size_t len,
                          uint64_t now_ms);
rt_status cg_actor_tick(cg_actor *a, const cg_host *h, void *hctx, uint64_t now_ms);
/* Emits the record with h->snapshot_out (exactly once on RT_OK). */
rt_status cg_actor_snapshot(cg_actor *a, const cg_host *h, void *hctx);

/* ----- introspection for tests (no secrets leave through these) ---------- */

/* Live signing sessions, and how many of them still hold a secret nonce. */
void cg_actor_session_counts(const cg_actor *a, unsigned *sessions, unsigned *nonces);
/* Whether a DKG is in flight; whether the wallet exists. */
int cg_actor_has_dkg(const cg_actor *a);
int cg_actor_has_wallet(const cg_actor *a);

#endif
