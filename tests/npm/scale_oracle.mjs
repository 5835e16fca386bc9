// scale_oracle.mjs - @polkadot/types as an independent reference for
// Tessera's SCALE codec, metadata reader and extrinsic builder
// (chain/scale.c, chain/metadata.c, chain/scale_value.c, chain/extrinsic.c).
//
//   node tests/npm/scale_oracle.mjs NPM_DIR REQUEST.json > RESPONSE.json
//
// NPM_DIR is what tests/npm_oracle.sh printed.  The request (written by
// tests/test_scale.c) names static metadata shipped in
// @polkadot/types-support and lists values to encode; the response holds, per
// metadata, a canonical summary (types, pallets, calls, storage, constants,
// signed extensions, runtime APIs) in the same shape test_scale.c builds from
// its own reader, and the hex polkadot produces for every value, call and
// signed extrinsic.  A value polkadot cannot take gives {"error": "..."}.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [npmDir, reqPath] = process.argv.slice(2);
const nm = npmDir + '/node_modules/';
// ESM ignores NODE_PATH: import the packages' ESM entry points by path.
const imp = (p) => import(pathToFileURL(nm + p).href);
const { TypeRegistry, Metadata, expandMetadata } = await imp('@polkadot/types/index.js');
const { u8aToHex, hexToU8a, u8aConcat, stringCamelCase } = await imp('@polkadot/util/index.js');

const req = JSON.parse(readFileSync(reqPath, 'utf8'));

// Static metadata: v14 files are the raw state_getMetadata bytes, v15 files
// are Option<OpaqueMetadata> as Metadata_metadata_at_version returns.
async function loadMetadata(name) {
  const hex = (await imp(`@polkadot/types-support/metadata/${name}-hex.js`)).default;
  const registry = new TypeRegistry();
  let raw = hexToU8a(hex);
  if (raw[0] === 1 && raw[1] !== 0x6d) raw = registry.createType('Bytes', raw.subarray(1)).toU8a(true);
  const md = new Metadata(registry, raw);
  registry.setMetadata(md);
  return { registry, md };
}

const num = (x) => x.toNumber();
const str = (x) => x.toString();
const optStr = (o) => (o.isSome ? o.unwrap().toString() : null);

function typeSummary(t) {
  const d = t.type.def;
  const kind = d.type;
  let detail;
  switch (kind) {
    case 'Composite':
      detail = d.asComposite.fields.map((f) => [optStr(f.name), num(f.type)]);
      break;
    case 'Variant':
      detail = d.asVariant.variants.map((v) => [str(v.name), num(v.index), v.fields.map((f) => [optStr(f.name), num(f.type)])]);
      break;
    case 'Sequence':
      detail = num(d.asSequence.type);
      break;
    case 'Array':
      detail = [num(d.asArray.len), num(d.asArray.type)];
      break;
    case 'Tuple':
      detail = d.asTuple.map(num);
      break;
    case 'Primitive':
      detail = d.asPrimitive.type;
      break;
    case 'Compact':
      detail = num(d.asCompact.type);
      break;
    case 'BitSequence':
      detail = [num(d.asBitSequence.bitStoreType), num(d.asBitSequence.bitOrderType)];
      break;
    default:
      detail = null;
  }
  const params = t.type.params.map((p) => [str(p.name), p.type.isSome ? num(p.type.unwrap()) : null]);
  return [num(t.id), t.type.path.map(str).join('::'), params, kind, detail];
}

function summary(md) {
  const version = md.version;
  const m = version === 14 ? md.asV14 : md.asV15;
  const lookup = m.lookup;
  const s = { version, types: lookup.types.map(typeSummary) };
  s.pallets = m.pallets.map((p) => {
    const out = { name: str(p.name), index: num(p.index) };
    if (p.calls.isSome) {
      const variants = lookup.getSiType(p.calls.unwrap().type).def.asVariant.variants;
      out.calls = variants.map((v) => [str(v.name), num(v.index), v.fields.map((f) => [optStr(f.name), num(f.type)])]);
    } else out.calls = null;
    if (p.storage.isSome) {
      const st = p.storage.unwrap();
      out.storage = {
        prefix: str(st.prefix),
        items: st.items.map((it) => {
          const t = it.type;
          const base = [str(it.name), it.modifier.type];
          if (t.isPlain) return [...base, [], null, num(t.asPlain), u8aToHex(it.fallback.toU8a(true))];
          const mp = t.asMap;
          return [...base, mp.hashers.map((h) => h.type), num(mp.key), num(mp.value), u8aToHex(it.fallback.toU8a(true))];
        }),
      };
    } else out.storage = null;
    out.events = p.events.isSome ? num(p.events.unwrap().type) : null;
    out.errors = p.errors.isSome ? num(p.errors.unwrap().type) : null;
    out.constants = p.constants.map((c) => [str(c.name), num(c.type), u8aToHex(c.value.toU8a(true))]);
    return out;
  });
  const x = m.extrinsic;
  s.extrinsic = {
    version: num(x.version),
    signedExtensions: x.signedExtensions.map((e) => [str(e.identifier), num(e.type), num(e.additionalSigned)]),
  };
  if (version === 14) s.extrinsic.type = num(x.get('type'));
  else {
    s.extrinsic.types = [num(x.addressType), num(x.callType), num(x.signatureType), num(x.extraType)];
    s.apis = m.apis.map((a) => [str(a.name), a.methods.map((me) => [str(me.name), me.inputs.map((i) => [str(i.name), num(i.type)]), num(me.output)])]);
    s.outerEnums = [num(m.outerEnums.callType), num(m.outerEnums.eventType), num(m.outerEnums.errorType)];
  }
  s.runtimeType = num(m.get('type'));
  return s;
}

// Codec.toHex() is the JSON form for some types (an Option's inner value):
// always take the SCALE bytes.
const hex = (codec) => u8aToHex(codec.toU8a());

function attempt(f) {
  try {
    return f();
  } catch (e) {
    return { error: String(e.message || e).slice(0, 300) };
  }
}

function makeCall(registry, md, c) {
  const { tx } = expandMetadata(registry, md);
  const fn = tx[stringCamelCase(c.pallet)][stringCamelCase(c.call)];
  if (!fn) throw new Error(`no call ${c.pallet}.${c.call}`);
  return fn(...fn.meta.args.map((a) => c.args[str(a.name)]));
}

const res = { metadata: {}, scale: [], lookup: [], calls: [], extrinsics: [], errors: [] };
const loaded = {};
for (const name of req.metadata || []) {
  loaded[name] = await loadMetadata(name);
  res.metadata[name] = summary(loaded[name].md);
}

// Plain SCALE values by polkadot type name.
const plain = new TypeRegistry();
for (const c of req.scale || []) res.scale.push(attempt(() => hex(plain.createType(c.type, c.value))));

// Values of metadata types by type id.
for (const c of req.lookup || []) {
  const { registry } = loaded[c.meta];
  res.lookup.push(attempt(() => hex(registry.createType(registry.createLookupType(c.type), c.value))));
}

for (const c of req.calls || []) {
  const { registry, md } = loaded[c.meta];
  res.calls.push(attempt(() => hex(makeCall(registry, md, c))));
}

// Signed extrinsics with a given (fake) signature: the signing payload as
// ExtrinsicPayload.toU8a({method: true}) and the envelope after addSignature.
for (const c of req.extrinsics || []) {
  const { registry, md } = loaded[c.meta];
  res.extrinsics.push(attempt(() => {
    const call = makeCall(registry, md, c.call);
    const era = c.era
      ? registry.createType('ExtrinsicEra', { current: c.era.current, period: c.era.period })
      : registry.createType('ExtrinsicEra', '0x00');
    const value = {
      blockHash: c.blockHash,
      era: hex(era),
      genesisHash: c.genesisHash,
      method: call.toHex(),
      nonce: c.nonce,
      specVersion: c.specVersion,
      tip: c.tip,
      transactionVersion: c.txVersion,
      mode: 0,
      version: 4,
    };
    const payload = registry.createType('ExtrinsicPayload', value, { version: 4 });
    const ext = registry.createType('Extrinsic', call, { version: 4 });
    ext.addSignature(c.signer, u8aConcat(new Uint8Array([1]), hexToU8a(c.signature)), value);
    return {
      era: hex(era),
      payload: u8aToHex(payload.toU8a({ method: true })),
      extrinsic: hex(ext),
      hash: ext.hash.toHex(),
    };
  }));
}

// Module errors: [pallet, error name] as polkadot finds them by index.
res.errors = (req.errors || []).map((c) => attempt(() => {
  const { registry } = loaded[c.meta];
  const found = registry.findMetaError(new Uint8Array([c.index, c.error]));
  const pallet = loaded[c.meta].md.asLatest.pallets.find((p) => p.index.toNumber() === c.index);
  return [pallet ? pallet.name.toString() : found.section, found.name];
}));

process.stdout.write(JSON.stringify(res));
