/*
 * net_status.c — the one table mapping rt_status to HTTP (API.md, Errors).
 *
 * Every layer reports gRPC canonical codes; this is the only place they
 * become HTTP, so a fault keeps the same meaning from the guest to the wire.
 */
#include "net_int.h"

/*
 * Only the codes of API.md's table go on the wire. The runtime and the guest
 * use a few more gRPC codes internally; each is folded here into the one the
 * contract documents for that situation, keeping the message that says why.
 */
static const net_http_status table[RT_STATUS_COUNT_] = {
    [RT_OK] = {200, "OK", false},
    /* A queued request failed by an actor restart or a stopping service:
     * the actor is (being) rebuilt, so retrying is right. */
    [RT_CANCELLED] = {503, "UNAVAILABLE", true},
    [RT_UNKNOWN] = {500, "INTERNAL", false},
    [RT_INVALID_ARGUMENT] = {400, "INVALID_ARGUMENT", false},
    [RT_DEADLINE_EXCEEDED] = {504, "DEADLINE_EXCEEDED", false},
    [RT_NOT_FOUND] = {404, "NOT_FOUND", false},
    /* The wallet already exists (a DKG round 1 or a restore with other
     * recovery data for a wallet the service holds): a conflict with
     * durable state, not a malformed request. */
    [RT_ALREADY_EXISTS] = {409, "ALREADY_EXISTS", false},
    [RT_PERMISSION_DENIED] = {403, "PERMISSION_DENIED", false},
    [RT_RESOURCE_EXHAUSTED] = {429, "RESOURCE_EXHAUSTED", true},
    /* Well-formed, but the wallet's state refuses it: retired (for good),
     * or a round posted before the previous one completed. Retrying the
     * same request does not help until that state changes. */
    [RT_FAILED_PRECONDITION] = {412, "FAILED_PRECONDITION", false},
    [RT_ABORTED] = {409, "ABORTED", false},
    [RT_OUT_OF_RANGE] = {400, "INVALID_ARGUMENT", false},
    /* An unknown command or command version: nothing serves it. */
    [RT_UNIMPLEMENTED] = {404, "NOT_FOUND", false},
    [RT_INTERNAL] = {500, "INTERNAL", false},
    [RT_UNAVAILABLE] = {503, "UNAVAILABLE", true},
    [RT_DATA_LOSS] = {500, "DATA_LOSS", false},
    [RT_UNAUTHENTICATED] = {401, "UNAUTHENTICATED", false},
};

static const net_http_status too_large = {413, "PAYLOAD_TOO_LARGE", false};
static const net_http_status uri_too_long = {414, "INVALID_ARGUMENT", false};

const net_http_status *net_status_http(int st)
{
    if (st == NET_ST_PAYLOAD_TOO_LARGE) return &too_large;
    if (st == NET_ST_URI_TOO_LONG) return &uri_too_long;
    if (st < 0 || st >= RT_STATUS_COUNT_) return &table[RT_UNKNOWN];
    return &table[st];
}
