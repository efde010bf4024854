/*
 * device.h — cosigner-cli's one-device commands (device.c): the process is
 * one participant with its own host key and state file, through the device
 * library (cosigner_device.h). Each returns the process exit status: 0 on
 * success, 1 on a refused or failed operation, 2 on usage errors.
 *
 *   dkg join --key K --params P --state S [--token T] [--url U]
 *   sign join --key K --state S --session SID --msg HEX --signers I,J[,...]
 *             [--taproot [--merkle-root HEX]] [--url U]
 *   recover --key K --wallet W --state S [--url U]
 *
 * url is the default service URL (a --url among the arguments overrides
 * it); json selects one JSON line of output instead of text.
 */
#ifndef CLI_DEVICE_H
#define CLI_DEVICE_H

int cli_dkg_join(const char *url, int json, int argc, char **argv);
int cli_sign_join(const char *url, int json, int argc, char **argv);
int cli_recover(const char *url, int json, int argc, char **argv);

#endif
