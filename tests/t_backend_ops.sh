#!/usr/bin/env bash
# t_backend_ops.sh - the CUDA kernels' own source on the CPU: the kernel test
# drivers (tests/backend_*.c; backend_ops.c: every model op against its CPU
# twin, then whole training steps of `tiny` and `small`) on the device
# emulator's build of the .cu files, once in each thread order the emulator
# offers at a barrier.
# A missing __syncthreads can hide under one order; all three must pass.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
lib=$BUILD/lib/libtessera_cudaemu.so
drivers=()
for f in tests/backend_*.c; do drivers+=("$BUILD/tests/$(basename "$f" .c)"); done
for f in "$lib" "${drivers[@]}"; do
  if [ ! -e "$f" ]; then
    echo "FAIL backend_ops ($f is missing: run make tests)"
    exit 1
  fi
done
rc=0
for driver in "${drivers[@]}"; do
  for order in forward reverse shuffle:20261202; do
    # the driver prints harness lines; tag each result with the order
    TESSERA_CUDA_LIB=$PWD/$lib CUDAEMU_ORDER=$order "$driver" "$@" 2>&1 |
      sed -E "s/^(ok  |FAIL|skip) ([^ ]+)/\1 \2[$order]/" || rc=1
  done
done
exit $rc
