/*
 * cg_mem.h — the few memory primitives the cosigner guest uses.
 *
 * The wasm32 build is freestanding (no libc headers), so the guest names
 * them through these macros: the compiler builtins there, <string.h>
 * natively. Private to guest/cosigner.
 */
#ifndef CG_MEM_H
#define CG_MEM_H

#if defined(__wasm__)
#define cg_memcpy __builtin_memcpy
#define cg_memset __builtin_memset
#define cg_memcmp __builtin_memcmp
#else
#include <string.h>
#define cg_memcpy memcpy
#define cg_memset memset
#define cg_memcmp memcmp
#endif

#endif
