/*
 * The real cosigner module in the sandbox: it instantiates with a host key,
 * refuses a malformed command without faulting, and its durable record
 * round-trips through snapshot and restore. (Its protocol behaviour is
 * tested in tests/guest against the native build.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cg_cmd.h"
#include "sbx.h"

extern const sbx_module sbx_module_cosigner;

static uint8_t hostkey[32];
static const sbx_config cfg = {.module = &sbx_module_cosigner, .hostkey = hostkey};

static void test_cosigner_module(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++)
        hostkey[i] = (uint8_t)(i + 1);
    sbx_instance *in = NULL;
    assert_int_equal(sbx_open(&cfg, NULL, 0, &in), RT_OK);
    rt_reply r;
    assert_int_equal(sbx_call(in, "\x01garbage", 8, 0, &r), RT_OK);
    assert_int_equal(r.status, RT_INVALID_ARGUMENT);
    free(r.data);
    assert_int_equal(sbx_last_fault(in), SBX_FAULT_NONE);

    uint8_t *snap;
    size_t len;
    assert_int_equal(sbx_snapshot(in, &snap, &len), RT_OK);
    sbx_close(in);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(sbx_open(&cfg, snap, len, &in), RT_OK);
        uint8_t *again;
        size_t again_len;
        assert_int_equal(sbx_snapshot(in, &again, &again_len), RT_OK);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, snap, len);
        free(again);
        sbx_close(in);
    }
    free(snap);
}

/* cg_configure runs at activation: a valid record is taken, a malformed one
 * makes activation fail (an actor-level fault), never a host crash. */
static void test_cosigner_configure(void **state)
{
    (void)state;
    cg_config cc = {.rendezvous_ms = 1234};
    uint8_t conf[CG_CONFIG_LEN];
    cg_config_encode(&cc, conf);
    sbx_config c = cfg;
    c.guest_config = conf;
    c.guest_config_len = sizeof conf;
    sbx_instance *in = NULL;
    assert_int_equal(sbx_open(&c, NULL, 0, &in), RT_OK);
    sbx_close(in);
    c.guest_config_len = 3;
    in = NULL;
    assert_int_equal(sbx_open(&c, NULL, 0, &in), RT_INTERNAL);
    assert_null(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cosigner_module),
        cmocka_unit_test(test_cosigner_configure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
