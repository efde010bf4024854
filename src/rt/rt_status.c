/* rt_status.c — canonical names for status codes (logs, JSON error bodies). */
#include "rt_status.h"

static const char *const names[RT_STATUS_COUNT_] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rt_status_name(int st)
{
    if (st < 0 || st >= RT_STATUS_COUNT_) return "UNKNOWN";
    return names[st];
}
