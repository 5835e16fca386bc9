/* cuda_runtime_api.h under the device emulator: everything is in cudaemu.h (force-included
 * by tests/cudaemu/cudaemu.mk; this directory is on the emulator's include
 * path only). */
#include "../cudaemu.h"
