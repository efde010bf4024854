/*
 * rt_status.h — the one status type of cosignerd.
 *
 * Every layer returns these codes (gRPC canonical codes, same numbers) so a
 * fault keeps its meaning from the guest up to the HTTP response. The HTTP
 * mapping lives in exactly one table in src/net. This header is freestanding
 * (no libc) so the wasm32 guest can include it too.
 */
#ifndef RT_STATUS_H
#define RT_STATUS_H

typedef enum rt_status {
    RT_OK = 0,
    RT_CANCELLED = 1,
    RT_UNKNOWN = 2,
    RT_INVALID_ARGUMENT = 3,
    RT_DEADLINE_EXCEEDED = 4,
    RT_NOT_FOUND = 5,
    RT_ALREADY_EXISTS = 6,
    RT_PERMISSION_DENIED = 7,
    RT_RESOURCE_EXHAUSTED = 8,
    RT_FAILED_PRECONDITION = 9,
    RT_ABORTED = 10,
    RT_OUT_OF_RANGE = 11,
    RT_UNIMPLEMENTED = 12,
    RT_INTERNAL = 13,
    RT_UNAVAILABLE = 14,
    RT_DATA_LOSS = 15,
    RT_UNAUTHENTICATED = 16,
    RT_STATUS_COUNT_ = 17
} rt_status;

/* Canonical upper-case name ("DEADLINE_EXCEEDED"); "UNKNOWN" for out-of-range values. */
const char *rt_status_name(int st);

#endif
