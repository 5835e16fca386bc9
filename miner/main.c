/* main.c - tessera-miner (the main loop arrives with the node module). */
#include <stdio.h>
#include <string.h>

#include "common/common.h"

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("tessera-miner %s\n", TESSERA_VERSION);
        return 0;
    }
    fprintf(stderr, "tessera-miner: not built yet\n");
    return 1;
}
