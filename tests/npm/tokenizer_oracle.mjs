// tokenizer_oracle.mjs - independent tokenizers from npm, for tests/t_tokenizer.sh
// and bench/b_tokenize.sh.
//
//   node tokenizer_oracle.mjs gpt2-json OUT.json     GPT-2's tokenizer.json, built from
//                                                    js-tiktoken's ranks
//   node tokenizer_oracle.mjs llama3-json OUT.json   Llama 3's, from llama3-tokenizer-js
//   node tokenizer_oracle.mjs encode gpt2|llama3 [--special] FILE...
//                                                    one line per file: its token ids
//   node tokenizer_oracle.mjs bench gpt2|llama3 FILE  MB/s of tiktoken (wasm) and
//                                                    js-tiktoken (GPT-2), of
//                                                    llama3-tokenizer-js (Llama 3)
//
// Files are read as bytes and decoded as UTF-8 with replacement (WHATWG: one
// U+FFFD per maximal invalid subsequence), which is what the Rust library
// needs done first.  Run with NODE_PATH pointing at the oracle's node_modules.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.NODE_PATH.split(':')[0] + '/');

function bytesToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = bs.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  return map;
}

const B2U = bytesToUnicode();
const mapped = (bytes) => Array.from(bytes, (b) => B2U[b]).join('');

// tiktoken's BPE on a byte string with only ranks below `limit`: the parts left.
function bpeParts(bytes, ranks, limit) {
  let parts = Array.from(bytes, (b) => [b]);
  for (;;) {
    let best = Infinity, at = -1;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = ranks.get(Buffer.from([...parts[i], ...parts[i + 1]]).toString('latin1'));
      if (r !== undefined && r < limit && r < best) { best = r; at = i; }
    }
    if (at < 0) return parts;
    parts.splice(at, 2, [...parts[at], ...parts[at + 1]]);
  }
}

async function gpt2Json(out) {
  const gpt2 = (await import(require.resolve('js-tiktoken/ranks/gpt2'))).default;
  const ranks = new Map();
  const byRank = [];
  for (const line of gpt2.bpe_ranks.split('\n')) {
    if (!line) continue;
    const [, offStr, ...toks] = line.split(' ');
    let r = Number(offStr);
    for (const t of toks) {
      const b = Buffer.from(t, 'base64');
      ranks.set(b.toString('latin1'), r);
      byRank[r] = b;
      r++;
    }
  }
  const vocab = {};
  const merges = [];
  for (let r = 0; r < byRank.length; r++) {
    vocab[mapped(byRank[r])] = r;
    if (byRank[r].length < 2) continue;
    const parts = bpeParts(byRank[r], ranks, r);
    if (parts.length !== 2) throw new Error(`token ${r} does not split into two parts`);
    merges.push(mapped(parts[0]) + ' ' + mapped(parts[1]));
  }
  const added = [];
  for (const [s, id] of Object.entries(gpt2.special_tokens)) {
    vocab[s] = id;
    added.push({ id, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  }
  const tj = {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
             fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  fs.writeFileSync(out, JSON.stringify(tj));
}

async function llama3() {
  const mod = await import(require.resolve('llama3-tokenizer-js'));
  return mod.default;
}

async function llama3Json(out) {
  const t = await llama3();
  const vocab = {};
  const added = [];
  t.vocabById.forEach((s, id) => {
    if (id < 128000) vocab[s] = id;
    else added.push({ id, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  });
  const merges = [...t.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  const tj = {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
        behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
  };
  fs.writeFileSync(out, JSON.stringify(tj));
}

const decodeLossy = (buf) => new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(buf);

async function encode(which, special, files) {
  let enc;
  if (which === 'gpt2') {
    const { getEncoding } = await import(require.resolve('js-tiktoken'));
    const e = getEncoding('gpt2');
    enc = (s) => special ? e.encode(s, 'all') : e.encode(s, [], []);
  } else {
    const t = await llama3();
    // llama3-tokenizer-js always matches special tokens in the text
    enc = (s) => t.encode(s, { bos: false, eos: false });
  }
  for (const f of files) process.stdout.write(JSON.stringify(enc(decodeLossy(fs.readFileSync(f)))) + '\n');
}

async function bench(which, file) {
  const text = decodeLossy(fs.readFileSync(file));
  const mb = Buffer.byteLength(text) / 1e6;
  // one warm-up run, then the timed one
  const time = (f) => { f(); const t0 = process.hrtime.bigint(); const n = f(); const s = Number(process.hrtime.bigint() - t0) / 1e9; return { seconds: s, tokens: n, mb_s: mb / s }; };
  const out = { mb };
  if (which === 'gpt2') {
    const { get_encoding } = require('tiktoken');
    const w = get_encoding('gpt2');
    out.tiktoken_wasm = time(() => w.encode_ordinary(text).length);
    w.free();
    const { getEncoding } = await import(require.resolve('js-tiktoken'));
    const j = getEncoding('gpt2');
    out.js_tiktoken = time(() => j.encode(text, [], []).length);
  } else {
    const t = await llama3();
    out.llama3_tokenizer_js = time(() => t.encode(text, { bos: false, eos: false }).length);
  }
  console.log(JSON.stringify(out));
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'gpt2-json') await gpt2Json(args[0]);
else if (cmd === 'llama3-json') await llama3Json(args[0]);
else if (cmd === 'encode') {
  const special = args[1] === '--special';
  await encode(args[0], special, args.slice(special ? 2 : 1));
} else if (cmd === 'bench') await bench(args[0], args[1]);
else { console.error('usage: tokenizer_oracle.mjs gpt2-json|llama3-json|encode|bench ...'); process.exit(2); }
