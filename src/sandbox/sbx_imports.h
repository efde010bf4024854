/*
 * sbx_imports.h — the host side of every import a guest module may have
 * (module "rt": guest/cg_abi.h, module "cx": guest/cg_cx.h), in wasm2c's
 * mangling: Z_<module>Z_<name>(context, wasm args...). wasm32 pointers and
 * size_t are u32 offsets into the instance's linear memory.
 *
 * Each module's generated glue includes this after the module's own header,
 * so a guest whose imports disagree with these signatures fails to compile
 * instead of calling through a mismatched prototype.
 */
#ifndef SBX_IMPORTS_H
#define SBX_IMPORTS_H

#include <stdint.h>

struct Z_rt_instance_t;
struct Z_cx_instance_t;

void Z_rtZ_reply(struct Z_rt_instance_t *, uint32_t st, uint32_t ptr, uint32_t len, uint64_t blame);
uint64_t Z_rtZ_park(struct Z_rt_instance_t *, uint64_t deadline_ms);
uint32_t Z_rtZ_complete(struct Z_rt_instance_t *, uint64_t id, uint32_t st, uint32_t ptr,
                        uint32_t len, uint64_t blame);
void Z_rtZ_mark_dirty(struct Z_rt_instance_t *);
void Z_rtZ_snapshot_out(struct Z_rt_instance_t *, uint32_t ptr, uint32_t len);

uint32_t Z_cxZ_scalar_check(struct Z_cx_instance_t *, uint32_t a);
uint32_t Z_cxZ_scalar_reduce(struct Z_cx_instance_t *, uint32_t out, uint32_t in);
uint32_t Z_cxZ_scalar_add(struct Z_cx_instance_t *, uint32_t out, uint32_t a, uint32_t b);
uint32_t Z_cxZ_scalar_mul(struct Z_cx_instance_t *, uint32_t out, uint32_t a, uint32_t b);
uint32_t Z_cxZ_scalar_neg(struct Z_cx_instance_t *, uint32_t out, uint32_t a);
uint32_t Z_cxZ_scalar_inv(struct Z_cx_instance_t *, uint32_t out, uint32_t a);
uint32_t Z_cxZ_scalar_is_zero(struct Z_cx_instance_t *, uint32_t a);
uint32_t Z_cxZ_point_parse(struct Z_cx_instance_t *, uint32_t out, uint32_t in, uint32_t allow_inf);
uint32_t Z_cxZ_point_ser(struct Z_cx_instance_t *, uint32_t out, uint32_t p);
uint32_t Z_cxZ_point_lift_x(struct Z_cx_instance_t *, uint32_t out, uint32_t x);
uint32_t Z_cxZ_point_xonly(struct Z_cx_instance_t *, uint32_t x, uint32_t y_even, uint32_t p);
uint32_t Z_cxZ_point_is_inf(struct Z_cx_instance_t *, uint32_t p);
uint32_t Z_cxZ_point_add(struct Z_cx_instance_t *, uint32_t out, uint32_t a, uint32_t b);
uint32_t Z_cxZ_point_neg(struct Z_cx_instance_t *, uint32_t out, uint32_t p);
uint32_t Z_cxZ_point_mul(struct Z_cx_instance_t *, uint32_t out, uint32_t p, uint32_t k);
uint32_t Z_cxZ_point_mul_base(struct Z_cx_instance_t *, uint32_t out, uint32_t k);
uint32_t Z_cxZ_point_eq(struct Z_cx_instance_t *, uint32_t a, uint32_t b);
void Z_cxZ_sha256(struct Z_cx_instance_t *, uint32_t out, uint32_t msg, uint32_t len);
void Z_cxZ_tagged_hash(struct Z_cx_instance_t *, uint32_t out, uint32_t tag, uint32_t tag_len,
                       uint32_t msg, uint32_t len);
uint32_t Z_cxZ_bip340_sign(struct Z_cx_instance_t *, uint32_t sig, uint32_t msg, uint32_t msg_len,
                           uint32_t seckey, uint32_t aux);
uint32_t Z_cxZ_bip340_verify(struct Z_cx_instance_t *, uint32_t sig, uint32_t msg, uint32_t msg_len,
                             uint32_t xonly);
uint32_t Z_cxZ_pubkey_from_seckey(struct Z_cx_instance_t *, uint32_t out, uint32_t seckey);
void Z_cxZ_random(struct Z_cx_instance_t *, uint32_t out, uint32_t len);
/* Added with BIP 445 signing (guest/frost): */
uint32_t Z_cxZ_point_check(struct Z_cx_instance_t *, uint32_t p);
uint32_t Z_cxZ_point_sum(struct Z_cx_instance_t *, uint32_t out, uint32_t pts, uint32_t n);
uint32_t Z_cxZ_point_add_mulg_public(struct Z_cx_instance_t *, uint32_t out, uint32_t p,
                                     uint32_t k);
void Z_cxZ_sha256_init(struct Z_cx_instance_t *, uint32_t c);
void Z_cxZ_tagged_hash_init(struct Z_cx_instance_t *, uint32_t c, uint32_t tag, uint32_t tag_len);
void Z_cxZ_sha256_update(struct Z_cx_instance_t *, uint32_t c, uint32_t msg, uint32_t len);
void Z_cxZ_sha256_final(struct Z_cx_instance_t *, uint32_t out, uint32_t c);

#endif
