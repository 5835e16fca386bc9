#!/usr/bin/env bash
# t_docker.sh - the container files: the compose file validates (Compose's own
# `config` check, from Debian's docker-compose or the docker compose plugin),
# the set-up script parses, and the Dockerfiles copy files that exist.
# Building and running images needs a Docker engine, which CI does not have.
set -u
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then COMPOSE=(docker-compose)
else COMPOSE=(); fi
if [ ${#COMPOSE[@]} -eq 0 ]; then
  echo "skip t_docker/compose_config_validates"
  echo "    skipped: neither 'docker compose' nor docker-compose is installed"
elif out=$("${COMPOSE[@]}" -f docker/compose.yml config 2>&1); then
  services=$(grep -cE '^  (minio|buckets|setup|validator|miner[0-9]+):' <<<"$out")
  if [ "$services" -ge 7 ] && grep -q "condition: service_completed_successfully" <<<"$out" &&
     grep -q "healthcheck" <<<"$out"; then
    echo "ok   t_docker/compose_config_validates"
  else
    echo "FAIL t_docker/compose_config_validates"; echo "    expected 7 services, completion dependencies and health checks"
  fi
else
  echo "FAIL t_docker/compose_config_validates"; printf '%s\n' "$out" | head -5 | sed 's/^/    /'
fi

if sh -n docker/setup.sh; then echo "ok   t_docker/setup_script_parses"; else echo "FAIL t_docker/setup_script_parses"; fi

missing=()
for f in docker/Dockerfile docker/Dockerfile.cpu; do
  while read -r src; do
    [ -e "$src" ] || missing+=("$f copies $src, which does not exist")
  done < <(sed -n 's/^COPY \(docker\/[^ ]*\) .*/\1/p' "$f")
  grep -q "make .*all" "$f" || missing+=("$f does not build")
done
if [ ${#missing[@]} -eq 0 ]; then echo "ok   t_docker/dockerfiles_refer_to_real_files"; else
  echo "FAIL t_docker/dockerfiles_refer_to_real_files"; printf '    %s\n' "${missing[@]}"; fi
exit 0
