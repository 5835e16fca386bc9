// sr25519_oracle.mjs - answers questions about sr25519 with independent
// implementations, for tests/test_sr25519.c to compare Tessera's with:
//   @scure/sr25519            sr25519 in JavaScript (noble curves and hashes)
//   @polkadot/wasm-crypto     schnorrkel itself (Rust), compiled to WebAssembly
//   @polkadot/util-crypto     Substrate's key derivation paths (DeriveJunction),
//                             SS58, the dev phrase's mini-secret
//
//   node sr25519_oracle.mjs NPM_DIR < requests
//
// NPM_DIR holds node_modules (tests/npm_oracle.sh installs it).  One request
// per line, one answer line per request, words separated by spaces, bytes as
// hex ("-" for no bytes).  Secret keys are in the "ed25519 bytes" layout
// (scalar * 8 || nonce) both libraries use.
//   keypair SEED          -> scure_sk scure_pk wasm_sk wasm_pk
//   sign SK MSG RNG       -> the @scure signature (context "substrate") with
//                            RNG as its 32 random bytes
//   wsign SK PK MSG       -> a schnorrkel (wasm) signature (random nonce)
//   verify SIG PK MSG     -> scure wasm  (1 verifies, 0 not)
//   derive SEED PATH      -> chaincodes(comma separated) wasm_sk wasm_pk
//                            scure_sk scure_pk polkadot_pk (hard junctions)
//   ss58 PK               -> the SS58 address, prefix 42
//   devmini               -> mini-secret of Substrate's development phrase
//   merlin RNG NONCE      -> the Merlin states of a fixed script (see
//                            merlin_script in test_sr25519.c): state pos
//                            posBegin curFlags after each step, the
//                            challenge and witness bytes in between
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
const load = (p) => import(pathToFileURL(join(dir, 'node_modules', p)).href);
const scure = await load('@scure/sr25519/index.js');
const wasm = await load('@polkadot/wasm-crypto/index.js');
const uc = await load('@polkadot/util-crypto/index.js');
await wasm.waitReady();
await uc.cryptoWaitReady();

const hex = (b) => (b.length ? Buffer.from(b).toString('hex') : '-');
const bytes = (h) => (h === '-' ? new Uint8Array(0) : new Uint8Array(Buffer.from(h, 'hex')));
const bit = (f) => {
  try {
    return f() ? '1' : '0';
  } catch {
    return '0';
  }
};
const DEV_PHRASE = 'bottom drive obey lake curtain smoke basket hold race lonely fit walk';

function merlin(rng, nonce) {
  const out = [];
  const t = new scure.__tests.SigningContext('test protocol');
  const dump = () => {
    const s = t.strobe;
    out.push(hex(s.state), s.pos, s.posBegin, s.curFlags);
  };
  dump();
  t.appendMessage('some label', 'some data');
  dump();
  t.appendMessage('big', Uint8Array.from({ length: 300 }, (_, i) => i & 0xff));
  dump();
  out.push(hex(t.challengeBytes('challenge', 200)));
  dump();
  out.push(hex(t.witnessBytes('signing', 64, rng, [nonce])));
  dump();
  return out.join(' ');
}

function answer(w) {
  switch (w[0]) {
    case 'keypair': {
      const sk = scure.secretFromSeed(bytes(w[1]));
      const kp = wasm.sr25519KeypairFromSeed(bytes(w[1]));
      return [hex(sk), hex(scure.getPublicKey(sk)), hex(kp.subarray(0, 64)), hex(kp.subarray(64))].join(' ');
    }
    case 'sign':
      return hex(scure.sign(bytes(w[1]), bytes(w[2]), bytes(w[3])));
    case 'wsign':
      return hex(wasm.sr25519Sign(bytes(w[2]), bytes(w[1]), bytes(w[3])));
    case 'verify': {
      const [sig, pk, msg] = [bytes(w[1]), bytes(w[2]), bytes(w[3])];
      return bit(() => scure.verify(msg, sig, pk)) + ' ' + bit(() => wasm.sr25519Verify(sig, msg, pk));
    }
    case 'derive': {
      const path = uc.keyExtractPath(w[2]).path;
      if (path.some((j) => !j.isHard)) throw new Error('soft junction');
      let kp = wasm.sr25519KeypairFromSeed(bytes(w[1]));
      let sk = scure.secretFromSeed(bytes(w[1]));
      for (const j of path) {
        kp = wasm.sr25519DeriveKeypairHard(kp, j.chainCode);
        sk = scure.HDKD.secretHard(sk, j.chainCode);
      }
      const pol = uc.keyFromPath(uc.sr25519PairFromSeed(bytes(w[1])), path, 'sr25519');
      return [
        path.map((j) => hex(j.chainCode)).join(','),
        hex(kp.subarray(0, 64)),
        hex(kp.subarray(64)),
        hex(sk),
        hex(scure.getPublicKey(sk)),
        hex(pol.publicKey),
      ].join(' ');
    }
    case 'ss58':
      return uc.encodeAddress(bytes(w[1]), 42);
    case 'devmini':
      return hex(uc.mnemonicToMiniSecret(DEV_PHRASE));
    case 'merlin':
      return merlin(bytes(w[1]), bytes(w[2]));
    default:
      throw new Error('unknown request ' + w[0]);
  }
}

const lines = readFileSync(0, 'utf8').split('\n').filter((l) => l.trim() !== '');
const out = [];
for (const l of lines) {
  try {
    out.push(answer(l.trim().split(/\s+/)));
  } catch (e) {
    out.push('error ' + String(e.message).replace(/\s+/g, '_'));
  }
}
process.stdout.write(out.join('\n') + '\n');
