/*
 * fuzz.h — what every fuzz target of tests/fuzz provides.
 *
 * Each target is one file built twice: as a libFuzzer binary (clang,
 * -fsanitize=fuzzer, scripts/fuzz.sh) and as a plain regression runner
 * (replay.c's main, any compiler) that replays the committed corpus in the
 * normal test suites, so every seed and every crash ever found stays a test.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the target's seed corpus (valid encodings) into dir, one file per
 * input, through fuzz_seed(). Returns the number written, -1 on error. */
int fuzz_write_seeds(const char *dir);

/* Writes one seed file dir/name. Returns 1 on success. */
int fuzz_seed(const char *dir, const char *name, const uint8_t *data, size_t len);

/* A finding that is not a memory error (e.g. a codec round trip broke):
 * abort so both libFuzzer and the regression runner report it. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond);                                         \
    } while (0)
_Noreturn void fuzz_fail(const char *file, int line, const char *what);

#endif
