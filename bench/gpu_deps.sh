#!/usr/bin/env bash
# gpu_deps.sh - run HERE (a Debian machine with network) before bench/gpu.sh
# goes to a GPU machine that cannot fetch anything: downloads the .deb
# packages of the C libraries Tessera links (libsodium, libcurl, cJSON, zstd,
# OpenBLAS) and the libraries they need beyond glibc into .gpudeps/ (ignored
# by git; name it in the device call's carry).  bench/gpu.sh unpacks them
# into .gpudeps/root when the GPU machine lacks the headers.
#
#   bash bench/gpu_deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpudeps
grep -qx '/.gpudeps/' .git/info/exclude 2>/dev/null || echo '/.gpudeps/' >>.git/info/exclude
want=(libsodium-dev libcurl4-openssl-dev libcjson-dev libzstd-dev libopenblas-openmp-dev libopenblas0-openmp libgomp1)
# the closure of their dependencies, less what every glibc system has
mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "${want[@]}" | grep -E '^[a-z0-9]' | sort -u |
  grep -vE '^(libc6|libc6-dev|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|debconf|dpkg|perl-base|libcrypt1|libc-dev-bin|linux-libc-dev|libcrypt-dev|libnsl-dev|libtirpc-dev|rpcsvc-proto|libnsl2|libtirpc3|libtirpc-common|libgssapi-krb5-2|libkrb5-3|libk5crypto3|libkrb5support0|libcom-err2|libkeyutils1)$')
cd .gpudeps
apt-get download "${pkgs[@]}" >/dev/null
ls *.deb | wc -l | xargs echo "gpu_deps: downloaded" && du -sh . | cut -f1 | xargs echo "gpu_deps: size"
