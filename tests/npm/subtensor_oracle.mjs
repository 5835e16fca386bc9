// subtensor_oracle.mjs - reads a running subtensor chain with @polkadot/api
// (an independent implementation of SCALE, metadata, storage keys and call
// encoding), for tests/t_subtensor.sh to compare with what Tessera reads and
// writes through its own code.
//
//   node subtensor_oracle.mjs NPM_DIR WS_URL NETUID state
//       -> JSON: spec version, the subnet's uids (hotkey SS58 by uid), the
//          weights of every uid, each hotkey's raw commitment (hex), the
//          owner hotkey, commit-reveal flag
//   node subtensor_oracle.mjs NPM_DIR WS_URL NETUID call PALLET CALL ARGS_JSON
//       -> the call's encoding (hex), as @polkadot/api builds it from the
//          chain's metadata (ARGS_JSON: an array of the arguments in order)
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [npmDir, wsUrl, netuidArg, what, ...rest] = process.argv.slice(2);
const load = (m) => import(pathToFileURL(join(npmDir, 'node_modules', m, 'index.js')).href)
  .catch(() => import(pathToFileURL(join(npmDir, 'node_modules', m, 'cjs', 'index.js')).href));
const { ApiPromise, WsProvider } = await load('@polkadot/api');
const { u8aToHex } = await load('@polkadot/util');

const netuid = Number(netuidArg);
const provider = new WsProvider(wsUrl, false);
await provider.connect();
const api = await ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
try {
  if (what === 'call') {
    const [pallet, call, argsJson] = rest;
    const section = pallet.charAt(0).toLowerCase() + pallet.slice(1);
    const method = call.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
    const tx = api.tx[section][method](...JSON.parse(argsJson));
    console.log(tx.method.toHex());
  } else {
    const sm = api.query.subtensorModule;
    const n = (await sm.subnetworkN(netuid)).toNumber();
    const uids = [];
    const weights = {};
    const commitments = {};
    for (let u = 0; u < n; u++) {
      const hk = (await sm.keys(netuid, u)).toString();
      uids.push(hk);
      const w = await sm.weights(netuid, u);
      if (w.length) weights[u] = w.map(([d, v]) => [d.toNumber(), v.toNumber()]);
      const c = await api.query.commitments.commitmentOf(netuid, hk);
      if (c.isSome) {
        const fields = c.unwrap().info.fields;
        let bytes = [];
        for (const f of fields) {
          if (f.type.startsWith('Raw')) bytes = bytes.concat(Array.from(f.value.toU8a(true)));
        }
        commitments[hk] = u8aToHex(Uint8Array.from(bytes));
      }
    }
    const out = {
      spec_version: api.runtimeVersion.specVersion.toNumber(),
      n,
      uids,
      weights,
      commitments,
      commit_reveal: (await sm.commitRevealWeightsEnabled(netuid)).isTrue,
    };
    console.log(JSON.stringify(out));
  }
} finally {
  await api.disconnect();
}
process.exit(0);
