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
orders=(forward reverse shuffle:20261202)
if [ "${TESSERA_SANITIZED:-0}" = 1 ]; then
  # Under AddressSanitizer the emulator switches fibers with ucontext (about
  # 70 times slower): one order, and the smaller compression cases (the
  # larger ones run in every plain `make test`).
  orders=(shuffle:20261202)
  echo "# sanitized: one thread order; backend_compress runs its two smallest cases"
fi
rc=0
for driver in "${drivers[@]}"; do
  args=("$@")
  if [ "${TESSERA_SANITIZED:-0}" = 1 ] && [ $# -eq 0 ] && [[ $driver == */backend_compress ]]; then
    args=(compress_llama_k6_bins4 compress_cancelling_sums_k64_bins4)
  fi
  for order in "${orders[@]}"; do
    # the driver prints harness lines; tag each result with the order
    TESSERA_CUDA_LIB=$PWD/$lib CUDAEMU_ORDER=$order "$driver" "${args[@]}" 2>&1 |
      sed -E "s/^(ok  |FAIL|skip) ([^ ]+)/\1 \2[$order]/" || rc=1
  done
done
exit $rc
