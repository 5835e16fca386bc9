#!/usr/bin/env bash
# deps.sh - install the Debian packages Tessera needs, and nothing when they
# are already present.  Called by `make deps` (and so by `make test` and
# `make demo`).  Needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  gcc make pkg-config
  # libraries
  libsodium-dev libcurl4-openssl-dev libcjson-dev libzstd-dev libopenblas-openmp-dev
  # the tokenizer: Oniguruma, the regex engine Hugging Face's tokenizers runs
  libonig-dev
  # tests: PyTorch/NumPy/PyNaCl references, the S3 server and an S3 client
  python3 python3-torch python3-numpy python3-nacl python3-swift s3cmd
  # the demo corpus is built from text these packages install
  fortunes-min fortunes
  # fuzzing (libFuzzer comes with clang's runtime)
  clang libclang-rt-14-dev
  # codec: tests/t_codec.py reads upload bodies with the zstd command
  zstd
  # the demo and the end-to-end tests: b2sum (coreutils) hashes the starting model
  coreutils
  # tests/t_docker.sh validates docker/compose.yml with Compose's own check
  docker-compose
  # tests of a real network's faults: network namespaces and veth links
  # (iproute2), a miner with a skewed clock (libfaketime)
  iproute2 faketime
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "deps: need root to install: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists when they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
