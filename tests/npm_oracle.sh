#!/usr/bin/env bash
# npm_oracle.sh - installs pinned npm packages (independent implementations
# the tests compare Tessera with) into a cache outside the repository and
# prints the directory holding their node_modules.
#
#   dir=$(bash tests/npm_oracle.sh NAME PKG@VERSION...) || skip ...
#
# NAME names the install (one directory per set of packages):
# ${TESSERA_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-npm}/NAME.  An
# install is reused when its package list is the same.  Exits 1 (with the
# reason on stderr) when node or npm is missing or the registry cannot be
# reached, so a test can say it was skipped.
set -uo pipefail
name=$1
shift
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node and npm are not installed" >&2
  exit 1
}
root=${TESSERA_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-npm}
dir=$root/$name
want="$*"
if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir" || exit 1
# one installer at a time per directory (tests may run in parallel)
exec 9>"$dir/.lock"
flock 9
if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
  echo "$dir"
  exit 0
fi
rm -f "$dir/.installed"
[ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --loglevel=error --save-exact --fetch-retries=1 --fetch-retry-maxtimeout=10000 --fetch-timeout=60000 "$@" >"$dir/npm.log" 2>&1); then
  echo "npm install $* failed (registry unreachable?); see $dir/npm.log" >&2
  exit 1
fi
echo "$want" >"$dir/.installed"
echo "$dir"
