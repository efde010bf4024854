/*
 * test_cx_threads — the host primitives are called from every actor thread
 * at once: first use races on the lazy initialisation, then all threads share
 * one libsecp256k1 context read-only. Each thread checks its own results.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cx.h"

#define THREADS 4
#define ROUNDS 200

static void *worker(void *arg)
{
    long bad = 0;
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        uint8_t r[32], a[32], b[32], s[32], A[64], B[64], S[64], T[64], sig[64], pk[33];
        cx_random(r, 32);
        cx_scalar_reduce(a, r);
        cx_random(r, 32);
        cx_scalar_reduce(b, r);
        /* (a+b)G == aG + bG */
        bad += !cx_scalar_add(s, a, b) || !cx_point_mul_base(S, s) || !cx_point_mul_base(A, a) ||
               !cx_point_mul_base(B, b) || !cx_point_add(T, A, B) || !cx_point_eq(S, T);
        /* inverse */
        if (!cx_scalar_is_zero(a)) {
            uint8_t inv[32], one[32] = {[31] = 1};
            bad += !cx_scalar_inv(inv, a) || !cx_scalar_mul(inv, inv, a) || memcmp(inv, one, 32);
        }
        /* BIP340 round trip */
        bad += !cx_pubkey_from_seckey(pk, a) || !cx_bip340_sign(sig, r, 32, a, b) ||
               !cx_bip340_verify(sig, r, 32, pk + 1);
    }
    return (void *)bad;
}

static void test_concurrent_use(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    /* no cx_init() first: the threads race on the lazy initialisation */
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        void *bad;
        assert_int_equal(pthread_join(th[i], &bad), 0);
        assert_int_equal((long)bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_concurrent_use)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
