/* main.c - tessera-validator (placeholder until the node module lands). */
#include <stdio.h>
#include <string.h>

#include "common/common.h"

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("tessera-validator %s\n", TESSERA_VERSION);
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: tessera-validator [--config FILE] [options]\n\nThe validator's main loop is not built yet.\n");
        return 0;
    }
    fprintf(stderr, "tessera-validator: the validator's main loop is not built yet\n");
    return 1;
}
