/*
 * net_codec.h — internal: JSON bodies <-> cosigner commands and replies.
 */
#ifndef NET_CODEC_H
#define NET_CODEC_H

#include <jansson.h>

#include "net_int.h"

/* One request on its way to an actor. */
typedef struct net_call {
    rt_key key;   /* the wallet */
    uint8_t *cmd; /* encoded command (malloc'd) */
    size_t cmd_len;
    uint8_t *params; /* DKG round 1: the params as stored in the wallet's meta */
    size_t params_len;
    uint64_t blame;      /* for a refusal of the params */
    net_retired retired; /* retire: the marker recorded, for the reply */
} net_call;

/* Wallet params as stored in meta: u8 n || hostpubkeys[n][33] || u8 t (the
 * wallet id, params_hash, commits to exactly these), optionally followed by
 * the retirement marker (net.h). Borrows meta. */
typedef struct net_params {
    uint32_t n, t;
    const uint8_t *hostpubkeys;
} net_params;

rt_status net_params_parse(const uint8_t *meta, size_t len, net_params *p);
/* Participant index of pk, -1 when it is not one. */
int net_params_index(const net_params *p, const uint8_t pk[33]);

/* Which wallet a request addresses (and, for DKG round 1 and restore, its
 * params: restore takes them from the recovery data, whose params hash
 * must be the wallet id of the URL). */
rt_status net_codec_target(int route, const char *url_wallet, json_t *body, net_call *out,
                           char *err, size_t err_len);
/* Encodes the command of an authenticated, authorized request. */
rt_status net_codec_encode(int route, json_t *body, const uint8_t sender[33], net_call *out,
                           char *err, size_t err_len);
rt_status net_codec_fault(uint32_t kind, const uint8_t sender[33], net_call *out, char *err,
                          size_t err_len);
/* Turns a successful reply payload into the route's JSON response. */
rt_status net_codec_reply(int route, const net_call *call, const uint8_t *data, size_t len,
                          json_t **out);
void net_call_free(net_call *c);

#endif
