/*
 * cg_wallet_id.h — the wallet id, computed on the host side (native only).
 *
 * A wallet's actor key is ChillDKG's params_hash(params): the HTTP layer
 * needs it to route DKG round 1 before any actor exists, so it is exposed
 * here next to the command codec rather than behind a guest call.
 */
#ifndef CG_WALLET_ID_H
#define CG_WALLET_ID_H

#include <stdint.h>

#include "rt_status.h"

/*
 * out = params_hash((hostpubkeys, t)) after ChillDKG's params validation:
 * 1 <= t <= n <= CG_MAX_PARTICIPANTS, every key a valid compressed point,
 * no duplicates. hostpubkeys is n * 33 contiguous bytes. On an invalid or
 * duplicate key returns RT_INVALID_ARGUMENT with *blame naming the
 * participant(s) (both indices for a duplicate); else *blame = 0.
 * cx_init() must have been called.
 */
rt_status cg_wallet_id(const uint8_t *hostpubkeys, uint32_t n, uint32_t t, uint8_t out[32],
                       uint64_t *blame);

#endif
