/*
 * cg_dkg.c — ChillDKG participant, coordinator, CertEq and recovery.
 * See cg_dkg.h for the API and encodings.
 */
#include <string.h>

#include "cg_cx.h"
#include "cg_dkg.h"

const char *cg_dkg_error_kind_name(cg_dkg_error_kind kind)
{
    static const char *const names[CG_DKG_ERR_KIND_COUNT_] = {
        "None",
        "ValueError",
        "HostSeckeyError",
        "ThresholdOrCountError",
        "InvalidHostPubkeyError",
        "DuplicateHostPubkeyError",
        "RandomnessError",
        "TooManyParticipants",
        "RecoveryDataError",
        "FaultyParticipantError",
        "FaultyParticipantOrCoordinatorError",
        "FaultyCoordinatorError",
        "UnknownFaultyParticipantOrCoordinatorError",
        "InternalError",
    };
    if ((unsigned)kind >= CG_DKG_ERR_KIND_COUNT_) return "InternalError";
    return names[kind];
}

void cg_dkg_wipe(void *p, size_t len)
{
    cx_wipe(p, len);
}
