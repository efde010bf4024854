/*
 * admin.h — the operator's side of the admin routes (/v1/admin/...):
 * `cosigner-cli admin ...`, and token minting for the load generator and
 * the chaos harness, whose devices enroll like real ones.
 */
#ifndef CLI_ADMIN_H
#define CLI_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* `cosigner-cli admin SUBCOMMAND ...` (argv[0] is the subcommand). */
int cli_admin(const char *url, int argc, char **argv);

/*
 * Mints a one-time enrollment token for exactly the device keys keys[n],
 * signed with the admin secret key. Blocking. Returns 1 with token_hex (65
 * bytes, NUL-terminated) filled; 0 with err (NUL-terminated) on failure.
 */
int admin_mint_token(const char *url, const uint8_t admin_sk[32], const uint8_t (*keys)[33],
                     size_t n, char token_hex[65], char *err, size_t errn);

/*
 * One request signed with sk (body consumed, may be NULL), blocking.
 * Returns the HTTP code (0: no response, reason in err). Ownership: *resp
 * (the JSON answer, may be NULL) is the caller's.
 */
long admin_call(const char *url, const char *method, const char *path, json_t *body,
                const uint8_t sk[32], json_t **resp, char *err, size_t errn);

/* Reads a secret key file (one line of hex, as `cosigner-cli keygen` and
 * cosignerd's admin.key write it). Returns 1 on success. */
int admin_read_key(const char *path, uint8_t sk[32], uint8_t pk[33]);

#endif
