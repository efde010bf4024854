/*
 * A wallet app in miniature, built against the INSTALLED cosigner_device.h
 * and cosigner-device.pc only (install_test.sh): host key round trip, then
 * loads a device's state file and writes it back.
 *
 *   cdev_example KEYFILE STATE OUT_STATE SCRATCH_KEYFILE
 * Prints the wallet id; exits 0 when every step worked.
 */
#include <stdio.h>
#include <string.h>

#include <cosigner_device.h>

static int check(cdev_status st, const char *what)
{
    if (st == CDEV_OK) return 1;
    fprintf(stderr, "cdev_example: %s: %s\n", what, cdev_status_str(st));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) return 2;
    uint8_t sk[CDEV_SECKEY_LEN], pk[CDEV_PUBKEY_LEN], back[CDEV_SECKEY_LEN];
    if (!check(cdev_init(), "init") || !check(cdev_keygen(sk, pk), "keygen") ||
        !check(cdev_key_save(argv[4], sk), "key save") ||
        !check(cdev_key_load(argv[4], back), "key load"))
        return 1;
    if (memcmp(sk, back, sizeof sk)) return 1;
    cdev_wipe(sk, sizeof sk);
    cdev_device *d = NULL;
    if (!check(cdev_key_load(argv[1], back), "device key") || !check(cdev_new(&d, back), "new"))
        return 1;
    cdev_wipe(back, sizeof back);
    cdev_wallet_info w;
    if (!check(cdev_state_load(d, argv[2]), cdev_error(d)) ||
        !check(cdev_wallet(d, &w), "wallet") || !check(cdev_state_save(d, argv[3]), "state save")) {
        cdev_free(d);
        return 1;
    }
    for (size_t i = 0; i < sizeof w.wallet_id; i++)
        printf("%02x", w.wallet_id[i]);
    printf(" %u-of-%u index %u\n", w.t, w.n, w.index);
    cdev_free(d);
    return 0;
}
