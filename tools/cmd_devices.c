/* cmd_devices.c - tessera devices: which compute backends this machine has. */
#include <stdio.h>

#include "kernels/kernels.h"
#include "tools.h"

static int cmd_devices(int argc, char **argv) {
    const ts_cmdline c = {
        .prog = "tessera devices",
        .usage = "",
        .summary = "Lists the GPUs this build can use, or says why there are none.\n"
                   "The CPU backend is always available.",
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    kn_device_info info[16];
    const char *why = NULL;
    int n = kn_cuda_devices(info, 16, &why);
    printf("cpu      available (OpenBLAS + OpenMP)\n");
    printf("cuda     %s\n", kn_cuda_built() ? "built in" : "not built in (CUDA=0)");
    if (n == 0) {
        printf("no GPU found (CUDA runtime says: %s); using the CPU backend\n", why ? why : "no devices");
        return 0;
    }
    if (kn_cuda_emulated())
        printf("(the CUDA library is the device emulator, TESSERA_CUDA_LIB: for tests, not for speed)\n");
    for (int i = 0; i < n; i++) {
        char mem[32];
        ts_fmt_bytes(mem, sizeof mem, (double)info[i].total_mem);
        printf("cuda:%d   %s, %s, compute capability %d.%d, %d SMs\n", info[i].index, info[i].name, mem,
               info[i].cc_major, info[i].cc_minor, info[i].multiprocessors);
    }
    return 0;
}

TS_COMMAND("devices", "list compute devices (GPUs, or why there are none)", 90, cmd_devices)
