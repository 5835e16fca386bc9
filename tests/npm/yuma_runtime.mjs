// yuma_runtime.mjs - makes a real subtensor runtime run Yuma consensus on a
// small subnet and records, for every epoch, what the epoch read and what it
// stored, for tests/t_yuma_runtime.sh to compare with `tessera chain yuma`.
//
//   node yuma_runtime.mjs NPM_DIR URL OUT.json
//
// URL: a chopsticks (tests/chopsticks.sh) running mainnet runtime spec 143
// (classic Yuma: opentensor/subtensor commit bc8a966cd, the code substitute of
// block 2585476) over the testfinney genesis.  OUT.json gets
//   {"spec": 143, "netuid": .., "tempo": .., "uids": {name: uid}, ..,
//    "epochs": [{"label": .., "block": E, "input": <yuma.h input JSON>,
//                "runtime": <yuma.h output JSON: what the runtime stored>}, ..]}
// Progress goes to stderr; exit 1 with one line naming the step that failed.
//
// How the chain is driven (real extrinsics wherever the runtime allows it):
//   dev_setStorage  balances of the test accounts; Sudo.Key = //Alice (the
//                   genesis sudo is a key we do not hold); EmissionValues of the
//                   subnet (set by the root network's epoch on a real chain,
//                   which has no validators here); BlockAtRegistration of one
//                   miner, moved forward as if it had re-registered, so the
//                   "outdated" mask of weights and bonds takes part.
//   extrinsics      sudo(utility.batch_all(admin_utils.sudo_set_*)) for the
//                   rate limits, tempo, registration limits, max validators
//                   and the activity cutoff; register_network; burned_register
//                   of every hotkey; add_stake; set_weights (validators with
//                   the permits their previous epoch gave, a self-weight,
//                   a miner's self-weight only, a validator weighting another
//                   validator).
//
// The subnet: validators V0, V1, V2 (600, 300, 100 TAO) and V3 (0.005 TAO:
// its bonds round to stored zeros), miners M3..M7 (M4 with 0.001 TAO, later
// 200), max 4 validators, tempo 9; six epochs (see the numbered steps below).
//
// Epochs run where blocks_until_next_epoch == 0, i.e.
// (block + netuid + 1) % (tempo + 1) == tempo.  In block E, on_initialize
// first pays out the previous epoch's LoadedEmission into stake, adds this
// block's share of EmissionValues (less the owner's cut) to PendingEmission,
// then runs the epoch on PendingEmission.  So the input is the state after
// block E-1 (stake, weights, bonds, LastUpdate, BlockAtRegistration,
// ValidatorPermit, the hyperparameters) with emission = PendingEmission(E-1)
// plus one block's increment (observed over the blocks before), and the output
// is read after block E: Active, Rank, Trust, Consensus, Incentive, Dividends,
// ValidatorTrust, PruningScores, ValidatorPermit, Emission, Bonds and the
// (server, validator) emission tuples of LoadedEmission.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [npmDir, url, outFile] = process.argv.slice(2);
if (!outFile) {
  console.error('usage: node yuma_runtime.mjs NPM_DIR URL OUT.json');
  process.exit(2);
}
const load = (m) => import(pathToFileURL(join(npmDir, 'node_modules', m, 'index.js')).href)
  .catch(() => import(pathToFileURL(join(npmDir, 'node_modules', m, 'cjs', 'index.js')).href));
const { ApiPromise, WsProvider } = await load('@polkadot/api');
const { Keyring } = await load('@polkadot/keyring');
const { cryptoWaitReady } = await load('@polkadot/util-crypto');
const { u8aToHex } = await load('@polkadot/util');

const t0 = Date.now();
const log = (...a) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const die = (why) => {
  console.error('yuma_runtime: ' + why);
  process.exit(1);
};

await cryptoWaitReady();
const provider = new WsProvider(url.replace(/^http/, 'ws'), false);
await provider.connect();
const api = await ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
const spec = api.runtimeVersion.specVersion.toNumber();
if (spec !== 143) die(`the runtime is spec ${spec}, want 143 (classic Yuma)`);
const S = api.query.subtensorModule;
const A = api.tx.adminUtils;
const kr = new Keyring({ type: 'sr25519', ss58Format: 42 });
const key = (s) => kr.addFromUri('//Tessera/yuma/' + s);
const alice = kr.addFromUri('//Alice');
const TAO = 1_000_000_000n;

let rid = 1;
async function rpc(method, params = []) {
  const r = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: rid++, method, params }),
  });
  const j = await r.json();
  if (j.error) throw new Error(`${method}: ${j.error.code} ${j.error.message} ${j.error.data ?? ''}`);
  return j.result;
}
const head = async () => (await api.rpc.chain.getHeader()).number.toNumber();
const newBlock = async (n = 1) => {
  await rpc('dev_newBlock', [{ count: n }]);
  return head();
};

// Submits the extrinsics [label, tx, signer] into one block, makes it, and
// dies unless every one of them succeeded.
const nonces = new Map();
async function block(list) {
  const hashes = [];
  for (const [label, tx, signer] of list) {
    if (!nonces.has(signer.address)) {
      nonces.set(signer.address, (await api.rpc.system.accountNextIndex(signer.address)).toNumber());
    }
    const nonce = nonces.get(signer.address);
    nonces.set(signer.address, nonce + 1);
    await tx.signAsync(signer, { nonce, era: 0 });
    try {
      await api.rpc.author.submitExtrinsic(tx);
    } catch (e) {
      die(`${label}: refused by the pool: ${e.message}`);
    }
    hashes.push([label, tx.hash.toHex()]);
  }
  const bn = await newBlock();
  const bh = await api.rpc.chain.getBlockHash(bn);
  const exts = (await api.rpc.chain.getBlock(bh)).block.extrinsics.map((x) => x.hash.toHex());
  const events = await api.query.system.events.at(bh);
  for (const [label, h] of hashes) {
    const idx = exts.indexOf(h);
    if (idx < 0) die(`${label}: not included in block ${bn}`);
    let ok = false, why = 'no result event';
    for (const { phase, event } of events) {
      if (!phase.isApplyExtrinsic || phase.asApplyExtrinsic.toNumber() !== idx) continue;
      if (api.events.system.ExtrinsicSuccess.is(event)) ok = true;
      if (api.events.system.ExtrinsicFailed.is(event)) {
        const de = event.data[0];
        why = de.isModule ? (({ section, name }) => `${section}.${name}`)(api.registry.findMetaError(de.asModule)) : de.toString();
      }
      // sudo succeeds even when the call it wraps fails: Sudid says which
      if (api.events.sudo?.Sudid?.is(event) && event.data[0].isErr) {
        const de = event.data[0].asErr;
        die(`${label}: the sudo call failed in block ${bn}: ` +
          (de.isModule ? (({ section, name }) => `${section}.${name}`)(api.registry.findMetaError(de.asModule)) : de.toString()));
      }
      if (api.events.utility?.BatchInterrupted?.is(event)) die(`${label}: batch interrupted: ${event.data.toString()}`);
    }
    if (!ok) die(`${label}: failed in block ${bn}: ${why}`);
  }
  log(`block ${bn}: ${hashes.map(([l]) => l).join('; ')}`);
  return bn;
}
const sudo = (calls) => api.tx.sudo.sudo(api.tx.utility.batchAll(calls));

// raw storage writes: [[key, SCALE value hex]]
const setRaw = (pairs) => rpc('dev_setStorage', [pairs]);
const enc = (type, v) => u8aToHex(api.createType(type, v).toU8a()); // SCALE bytes (toHex of a number is big-endian)

// ------------------------------------------------------------------ accounts
const names = ['V0', 'V1', 'V2', 'M3', 'M4', 'M5', 'M6', 'M7', 'V3'];
const cold = Object.fromEntries(names.map((n) => [n, key(n + '/cold')]));
const hot = Object.fromEntries(names.map((n) => [n, key(n + '/hot')]));
const funded = [alice, ...Object.values(cold), ...Object.values(hot)];
// (object form: chopsticks encodes the values from the metadata; none is 0)
await rpc('dev_setStorage', [{
  System: { Account: funded.map((k) => [[k.address], { providers: 1, data: { free: (1_000_000n * TAO).toString() } }]) },
  Sudo: { Key: alice.address },
}]);
if ((await api.query.sudo.key()).toString() !== alice.address) die('could not make //Alice the sudo key');
log(`spec ${spec}, head ${await head()}, accounts funded, //Alice is sudo`);

// ------------------------------------------------------------ the subnet
await block([['sudo: network rate limit 0, tx rate limit 0', sudo([A.sudoSetNetworkRateLimit(0), A.sudoSetTxRateLimit(0)]), alice]]);
const before = new Set((await S.networksAdded.entries()).map(([k]) => k.args[0].toNumber()));
await block([['register_network by //Alice', api.tx.subtensorModule.registerNetwork(), alice]]);
const NET = (await S.networksAdded.entries()).map(([k]) => k.args[0].toNumber()).find((n) => !before.has(n));
if (NET === undefined) die('register_network made no subnet');
const TEMPO = 9;
await block([['sudo: subnet hyperparameters', sudo([
  A.sudoSetTempo(NET, TEMPO),
  A.sudoSetWeightsSetRateLimit(NET, 0),
  A.sudoSetMaxRegistrationsPerBlock(NET, 16),
  A.sudoSetTargetRegistrationsPerInterval(NET, 16),
  A.sudoSetMaxAllowedValidators(NET, 4),
  A.sudoSetActivityCutoff(NET, 5000),
]), alice]]);
// the subnet's share of each block's emission (the root epoch's output)
const EMISSION_VALUE = 987_654_321n;
await setRaw([[S.emissionValues.key(NET), enc('u64', EMISSION_VALUE)]]);
log(`netuid ${NET}: tempo ${TEMPO}, EmissionValues ${EMISSION_VALUE}`);

await block(names.map((n) => [`burned_register ${n}`, api.tx.subtensorModule.burnedRegister(NET, hot[n].address), cold[n]]));
const uid = {};
for (const n of names) uid[n] = (await S.uids(NET, hot[n].address)).unwrap().toNumber();
log('uids ' + names.map((n) => `${n}=${uid[n]}`).join(' '));
// V3's stake is tiny next to V0's: its bonds round to stored zeros
const stakes = { V0: 600_123_456_789n, V1: 300_987_654_321n, V2: 100_555_555_555n, V3: 5_000_003n, M4: 1_000_007n };
await block(Object.entries(stakes).map(([n, s]) => [`add_stake ${n} ${s}`, api.tx.subtensorModule.addStake(hot[n].address, s), cold[n]]));

// --------------------------------------------------------- snapshots
const u16 = (v) => v.toNumber();
const num = (v) => {
  const b = BigInt(v.toString());
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) die(`value ${b} does not fit a JSON number exactly`);
  return Number(b);
};
const rows = async (item, n) => {
  const out = [];
  for (let i = 0; i < n; i++) out.push((await item(NET, i)).map(([j, v]) => [u16(j), u16(v)]));
  return out;
};
const sortedRow = (r) => [...r].sort((a, b) => a[0] - b[0]);
// block_step.rs blocks_until_next_epoch(netuid, tempo, b) == 0, i.e.
// (b + netuid + 1) % (tempo + 1) == tempo (its comment's "== 0" is off by one)
const epochAt = (b) => TEMPO - ((b + NET + 1) % (TEMPO + 1)) === 0;

async function inputNow() {
  const n = u16(await S.subnetworkN(NET));
  const keys = [];
  for (let i = 0; i < n; i++) keys.push((await S.keys(NET, i)).toString());
  const stake = [];
  for (const k of keys) stake.push(num(await S.totalHotkeyStake(k)));
  const lastUpdate = (await S.lastUpdate(NET)).map(num);
  const reg = [];
  for (let i = 0; i < n; i++) reg.push(num(await S.blockAtRegistration(NET, i)));
  const permit = (await S.validatorPermit(NET)).map((b) => b.isTrue);
  const weights = await rows(S.weights, n);
  const bonds = await rows(S.bonds, n);
  if (lastUpdate.length !== n || permit.length !== n) die(`LastUpdate/ValidatorPermit have ${lastUpdate.length}/${permit.length} entries, n is ${n}`);
  return {
    keys,
    params: {
      kappa: u16(await S.kappa(NET)),
      bonds_moving_average: num(await S.bondsMovingAverage(NET)),
      activity_cutoff: num(await S.activityCutoff(NET)),
      max_validators: u16(await S.maxAllowedValidators(NET)),
    },
    pending: BigInt((await S.pendingEmission(NET)).toString()),
    neurons: keys.map((_, i) => ({
      stake: stake[i], last_update: lastUpdate[i], registered: reg[i], validator_permit: permit[i],
      weights: sortedRow(weights[i]), bonds: sortedRow(bonds[i]),
    })),
    unsorted: [...weights, ...bonds].some((r) => JSON.stringify(r) !== JSON.stringify(sortedRow(r))),
  };
}

async function outputNow(keys) {
  const n = keys.length;
  const vec = async (item) => (await item(NET)).map((x) => (typeof x.isTrue === 'boolean' ? x.isTrue : num(x)));
  const v = {};
  for (const f of ['active', 'rank', 'trust', 'consensus', 'incentive', 'dividends', 'validatorTrust', 'pruningScores', 'validatorPermit', 'emission']) {
    v[f] = await vec(S[f]);
    if (v[f].length !== n) die(`${f} has ${v[f].length} entries, n is ${n}`);
  }
  const loaded = await S.loadedEmission(NET);
  if (loaded.isNone) die('no LoadedEmission after the epoch (the emission safety check refused it?)');
  const tuples = new Map(loaded.unwrap().map(([hk, se, ve]) => [hk.toString(), [num(se), num(ve)]]));
  const bonds = await rows(S.bonds, n);
  return {
    neurons: keys.map((k, i) => {
      const t = tuples.get(k);
      if (!t) die(`uid ${i} (${k}) has no LoadedEmission tuple`);
      return {
        uid: i, active: v.active[i], validator_permit: v.validatorPermit[i],
        rank: v.rank[i], trust: v.trust[i], consensus: v.consensus[i], incentive: v.incentive[i],
        dividends: v.dividends[i], validator_trust: v.validatorTrust[i], pruning_score: v.pruningScores[i],
        emission: v.emission[i], server_emission: t[0], validator_emission: t[1], bonds: bonds[i],
      };
    }),
  };
}

// Makes blocks up to the one before the next epoch, runs the epoch block, and
// records the epoch.
const epochs = [];
async function runEpoch(label) {
  let b = await head();
  while (!epochAt(b + 1)) b = await newBlock(); // b = E-1
  // one block's increment of PendingEmission: E-1 over E-2 (after an epoch
  // at E-2 the pending is 0, so the difference is still one increment)
  const p0 = BigInt((await S.pendingEmission.at(await api.rpc.chain.getBlockHash(b - 1), NET)).toString());
  const before = await inputNow();
  const inc = before.pending - p0;
  if (inc <= 0n) die(`${label}: PendingEmission did not grow (${p0} -> ${before.pending})`);
  const E = b + 1;
  const hashBefore = (await api.rpc.chain.getBlockHash(b)).toHex();
  if ((await newBlock()) !== E) die(`${label}: block ${E} was not made`);
  const last = num(await S.lastMechansimStepBlock(NET));
  if (last !== E) die(`${label}: the epoch did not run at block ${E} (LastMechansimStepBlock ${last})`);
  const emission = before.pending + inc;
  const runtime = await outputNow(before.keys);
  epochs.push({
    label, block: E, state_before: hashBefore, emission_increment: num(inc), weights_or_bonds_unsorted: before.unsorted,
    input: { block: E, emission: num(emission), params: before.params, neurons: before.neurons },
    runtime,
  });
  const r = runtime.neurons;
  log(`${label}: epoch at block ${E}, emission ${emission}; permits ${r.map((x) => +x.validator_permit).join('')}, ` +
    `incentive [${r.map((x) => x.incentive).join(' ')}], dividends [${r.map((x) => x.dividends).join(' ')}]`);
  return E;
}

const sw = (n, pairs) => {
  const s = [...pairs].sort((a, b) => uid[a[0]] - uid[b[0]]);
  return [`set_weights ${n}`, api.tx.subtensorModule.setWeights(NET, s.map(([m]) => uid[m]), s.map(([, w]) => w), 0), hot[n]];
};

// 1. no permits yet: no weights count; emission follows stake; the permits go
//    to the top 4 by stake (V0, V1, V2, V3; M4's smaller stake gets none)
await runEpoch('epoch1_no_permits');

// 2. weights that disagree: V2 is off the majority (clipped), V0 has a
//    self-weight in its row, V2 weights the validator V1, M4 sets only a
//    self-weight (allowed without a permit), M3 and M7 set none.  No bonds yet.
await block([
  sw('V0', [['M3', 100], ['M4', 50], ['M5', 20], ['M6', 10], ['V0', 30]]),
  sw('V1', [['M3', 90], ['M4', 60], ['M5', 20], ['M6', 10]]),
  sw('V2', [['V1', 30], ['M5', 10], ['M6', 20], ['M7', 100]]),
  sw('V3', [['M3', 100], ['M7', 50]]),
  sw('M4', [['M4', 1]]),
]);
await runEpoch('epoch2_weights_no_bonds');

// 3. the bonds of epoch 2 feed this one; V1 moves towards M4 and M7; M6 is
//    "re-registered" (BlockAtRegistration moved past V2's last weights, before
//    V0's and V1's new ones) so V2's weight and bond on M6 are outdated.  M3's
//    incentive of epoch 2 (now stake) outweighs V3's tiny stake: the permit
//    moves from V3 to M3, and V3's bonds row (a stored zero) is emptied.
const lu = (await S.lastUpdate(NET)).map(num);
const reg6 = (await head());
if (!(reg6 >= lu[uid.V2])) die('M6 re-registration block precedes V2 weights');
await setRaw([[S.blockAtRegistration.key(NET, uid.M6), enc('u64', reg6)]]);
await newBlock();
await block([
  sw('V0', [['M3', 100], ['M4', 50], ['M5', 20], ['M6', 10], ['V0', 30]]),
  sw('V1', [['M3', 30], ['M4', 100], ['M5', 20], ['M6', 10], ['M7', 40]]),
]);
await runEpoch('epoch3_bonds_outdated');

// 4. V2 (and the miners that never set weights) fall outside the activity
//    cutoff: its stake no longer counts (its bonds still earn dividends)
{
  const b = await head();
  const luNow = (await S.lastUpdate(NET)).map(num);
  // epoch block E is at most TEMPO+1 blocks ahead; V0/V1 update now, so
  // V2 (older) is inactive at E when cutoff < E - lu(V2) and the fresh ones
  // stay active when cutoff >= E - (b+2)
  const cutoff = TEMPO + 3;
  await block([['sudo: activity cutoff ' + cutoff, sudo([A.sudoSetActivityCutoff(NET, cutoff)]), alice],
    sw('V0', [['M3', 80], ['M4', 50], ['M5', 40], ['M6', 10]]),
    sw('V1', [['M3', 30], ['M4', 100], ['M5', 20], ['M6', 10], ['M7', 40]])]);
  log(`activity cutoff ${cutoff}; V2 last update ${luNow[uid.V2]}, head ${b + 1}`);
}
await runEpoch('epoch4_inactive_validator');

// 5. M4 stakes 200 TAO: the permit moves from M3 to M4 (M4's self-weight row
//    is still masked: the epoch uses the permits of the previous epoch).  V0
//    sets new weights, V1 does not and falls outside the cutoff: V0 is the
//    only active validator.
await block([['add_stake M4 200 TAO', api.tx.subtensorModule.addStake(hot.M4.address, 200n * TAO), cold.M4],
  sw('V0', [['M3', 10], ['M4', 50], ['M5', 40], ['M7', 5]])]);
await runEpoch('epoch5_permits_move');

// 6. nobody sets weights: no active stake at all; emission follows stake
await runEpoch('epoch6_no_active_stake');

writeFileSync(outFile, JSON.stringify({ spec, netuid: NET, tempo: TEMPO, uids: uid, stakes_added: Object.fromEntries(Object.entries(stakes).map(([k, v]) => [k, v.toString()])), epochs }, null, 1));
log(`wrote ${epochs.length} epochs to ${outFile}`);
await api.disconnect();
process.exit(0);
