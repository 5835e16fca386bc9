#!/usr/bin/env bash
# s3.sh - the suite's S3 server: OpenStack Swift with its S3 layer, from
# Debian's python3-swift (tools/deps.sh installs it; this script installs
# nothing).  All state lives under DIR; it listens on loopback only, on ports
# the kernel picks, with region "auto" like Cloudflare R2.
#
#   bash tests/servers/s3.sh start DIR   prints TESSERA_TEST_S3_* KEY=VALUE lines
#   bash tests/servers/s3.sh stop DIR    stops it by its process id
#   bash tests/servers/s3.sh status DIR  exit 0 when running
#
# "start" on a DIR that already holds a stopped server restarts it on the same
# ports with the same objects.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 2 ]; then echo "usage: $0 start|stop|status DIR" >&2; exit 2; fi
if [ ! -x /usr/bin/python3 ]; then echo "s3.sh: /usr/bin/python3 is missing (make deps)" >&2; exit 1; fi
exec /usr/bin/python3 "$here/swift_s3.py" "$1" "$2"
