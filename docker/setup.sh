#!/bin/sh
# setup.sh - the compose file's one-shot job: creates the local subnet on the
# shared volume (once), the hotkeys of every node, their registration and the
# validator's stake.  Re-running it changes nothing.
set -eu
SUBNET=${SUBNET:-/subnet/chain}
export TESSERA_HOME=${TESSERA_HOME:-/subnet/home}
MINERS=${MINERS:-miner1 miner2 miner3}
mkdir -p /subnet
if [ ! -f "$SUBNET/genesis.json" ]; then
  cat >/subnet/params.json <<P
{
  "model": {"preset": "${MODEL:-tiny}"},
  "data": "/opt/tessera/corpus/train",
  "val_data": "/opt/tessera/corpus/val",
  "seq_len": 64, "batch_size": 8, "inner_steps": 16,
  "optimizer": {"lr": 0.003, "warmup_steps": 8, "total_steps": 20000},
  "upload_grace_s": 5, "checkpoint_interval": 5,
  "gauntlet": {"peers_interval": 1, "weights_interval": 1,
               "copycat_slash_overlap": 0.6, "copycat_reset_overlap": 0.75, "copycat_ban_overlap": 0.9}
}
P
  tessera localnet init --dir "$SUBNET" --run-id docker --block-time "${BLOCK_TIME:-1}" \
    --blocks-per-window "${BLOCKS_PER_WINDOW:-30}" --params /subnet/params.json
fi
for k in validator $MINERS; do
  [ -f "$TESSERA_HOME/wallets/docker/hotkeys/$k" ] || tessera keygen --wallet docker --hotkey "$k"
  tessera localnet register --dir "$SUBNET" --wallet docker --hotkey "$k" 2>/dev/null || true
done
if [ ! -f /subnet/.staked ]; then
  tessera localnet stake --dir "$SUBNET" --wallet docker --hotkey validator --amount 1000
  touch /subnet/.staked
fi
tessera localnet status --dir "$SUBNET"
