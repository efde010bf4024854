/*
 * http.h — the device side's HTTP client: many concurrent signed requests on
 * one libcurl multi handle, completion by callback (the CLI's simulated
 * devices and the load generator's users all wait on rendezvous replies at
 * once, so nothing here blocks per request).
 */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <stdint.h>

#include <jansson.h>

typedef struct http_client http_client;

/* code: HTTP status (0 = transport failure); resp: parsed JSON body or NULL
 * (borrowed for the callback); err: a transport error text or NULL. */
typedef void (*http_done)(void *arg, long code, json_t *resp, const char *err);

http_client *http_new(const char *base_url, unsigned max_conns);
void http_free(http_client *c);

/* Sends METHOD base_url+path. body (may be NULL for GET) is consumed.
 * seckey (32 bytes, may be NULL) signs the request (Authorization header). */
void http_request(http_client *c, const char *method, const char *path, json_t *body,
                  const uint8_t *seckey, http_done cb, void *arg);

/* Lower level, for protocol tests: body is sent verbatim (may be NULL) and
 * auth (may be NULL) is the complete Authorization header value. */
void http_request_raw(http_client *c, const char *method, const char *path, const char *body,
                      size_t body_len, const char *auth, http_done cb, void *arg);

/* Runs transfers until none is left (callbacks may add more). tick (may be
 * NULL) is called about every 200 ms. */
void http_run(http_client *c, void (*tick)(void *arg), void *tick_arg);

/* Open-loop form of http_run: sched is called on every turn of the loop,
 * starts whatever is due (it may add requests) and returns how many ms it
 * can sleep before it is due again (capped at 100), or -1 once it will start
 * nothing more. Runs until sched said -1 and no transfer is left, so a
 * schedule with gaps (no request in flight) is not cut short. */
void http_run_sched(http_client *c, int (*sched)(void *arg), void *arg);

/* Synchronous GET of a JSON document (service info). Returns the HTTP code. */
long http_get_json(const char *base_url, const char *path, json_t **out);

#endif
