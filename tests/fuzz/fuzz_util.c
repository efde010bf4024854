/* fuzz_util.c — helpers shared by the fuzz targets and their runners. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

int fuzz_seed(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

_Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "FUZZ FINDING %s:%d: %s\n", file, line, what);
    abort();
}
