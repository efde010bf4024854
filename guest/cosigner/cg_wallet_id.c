/*
 * cg_wallet_id.c — ChillDKG params_hash for the host side.
 */
#include <string.h>

#include "cg_cmd.h"
#include "cg_wallet_id.h"
#include "cx.h"

rt_status cg_wallet_id(const uint8_t *hostpubkeys, uint32_t n, uint32_t t, uint8_t out[32],
                       uint64_t *blame)
{
    uint8_t buf[4 + CG_MAX_PARTICIPANTS * CG_HOSTPUBKEY_LEN];
    uint8_t pt[CX_POINT_LEN];

    *blame = 0;
    if (!hostpubkeys || n < 1 || n > CG_MAX_PARTICIPANTS || t < 1 || t > n)
        return RT_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < n; i++) {
        if (!cx_point_parse(pt, hostpubkeys + (size_t)i * 33, 0)) {
            *blame = (uint64_t)1 << i;
            return RT_INVALID_ARGUMENT;
        }
    }
    /* Report the first duplicate pair, as ChillDKG's params_validate does. */
    for (uint32_t j = 1; j < n; j++)
        for (uint32_t i = 0; i < j; i++)
            if (!memcmp(hostpubkeys + (size_t)i * 33, hostpubkeys + (size_t)j * 33, 33)) {
                *blame = ((uint64_t)1 << i) | ((uint64_t)1 << j);
                return RT_INVALID_ARGUMENT;
            }
    buf[0] = (uint8_t)(t >> 24);
    buf[1] = (uint8_t)(t >> 16);
    buf[2] = (uint8_t)(t >> 8);
    buf[3] = (uint8_t)t;
    memcpy(buf + 4, hostpubkeys, (size_t)n * 33);
    static const char tag[] = "BIP DKG/params_hash";
    cx_tagged_hash(out, tag, sizeof tag - 1, buf, 4 + (size_t)n * 33);
    return RT_OK;
}
