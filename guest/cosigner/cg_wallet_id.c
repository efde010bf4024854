/*
 * cg_wallet_id.c — ChillDKG params_hash for the host side, through the same
 * ChillDKG code the guest runs (so host routing and guest agree by
 * construction).
 */
#include <string.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "dkg/cg_dkg.h"

rt_status cg_wallet_id(const uint8_t *hostpubkeys, uint32_t n, uint32_t t, uint8_t out[32],
                       uint64_t *blame)
{
    cg_dkg_params p;
    cg_dkg_error err = {0};

    *blame = 0;
    if (!hostpubkeys || n < 1 || n > CG_MAX_PARTICIPANTS || t < 1 || t > n)
        return RT_INVALID_ARGUMENT;
    memset(&p, 0, sizeof p);
    p.n = n;
    p.t = t;
    memcpy(p.hostpubkeys, hostpubkeys, (size_t)n * 33);
    if (cg_dkg_params_hash(out, &p, &err) == RT_OK) return RT_OK;
    if (err.participant >= 0 && err.participant < CG_MAX_PARTICIPANTS)
        *blame |= (uint64_t)1 << err.participant;
    if (err.participant2 >= 0 && err.participant2 < CG_MAX_PARTICIPANTS)
        *blame |= (uint64_t)1 << err.participant2;
    return RT_INVALID_ARGUMENT;
}
