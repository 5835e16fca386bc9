#!/usr/bin/python3
"""t_codec.py - the `tessera codec` commands, checked against an independent
reading of the wire format (docs/FORMATS.md section 7) and an independent
NumPy implementation of SparseLoCo (PROTOCOL.md sections 7 and 8).

Prints one line per check: ok / FAIL (+ details) / skip (+ reason)."""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

REPO = os.environ.get("TESSERA_REPO", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
TESSERA = os.path.join(REPO, BUILD, "bin", "tessera")

failures = 0


def report(name, ok, detail=""):
    global failures
    if ok:
        print(f"ok   {name}")
    else:
        failures += 1
        print(f"FAIL {name}")
        for line in str(detail).splitlines()[:20]:
            print(f"    {line}")


def skip(name, why):
    print(f"skip {name}\n    skipped: {why}")


try:
    import numpy as np
except ImportError as ex:  # pragma: no cover
    skip("t_codec", f"python modules missing: {ex}")
    sys.exit(0)

if not os.path.exists(TESSERA):
    skip("t_codec", f"{TESSERA} not built")
    sys.exit(0)


def run(*args, env=None, check=False):
    p = subprocess.run([TESSERA, *args], capture_output=True, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


# ------------------------------------------------------------ safetensors
def write_st(path, tensors):
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, d in header.items():
        b, e = d["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=np.float32).reshape(d["shape"])
    return out, meta


# ------------------------------------------------------------- the wire
TAG = "tessera/gradient/v1"  # the upload signature's domain tag (FORMATS 7.1)


def parse_wire(w):
    h = {}
    h["magic"] = w[0:8]
    h["version"], h["flags"], h["hdrlen"] = struct.unpack_from("<HHI", w, 8)
    rl = w[16]
    h["run"] = w[17:17 + rl].decode()
    h["scheme"] = w[81]  # signature scheme: 1 = sr25519
    h["reserved"] = w[82:84]
    h["uid"] = struct.unpack_from("<I", w, 84)[0]
    h["window"] = struct.unpack_from("<Q", w, 88)[0]
    h["hotkey"] = w[96:128]
    h["base"], h["sample"], h["config"] = w[128:160], w[160:192], w[192:224]
    h["k"], h["bins"], h["chunk"] = struct.unpack_from("<HHH", w, 224)
    h["beta"], h["alpha"], h["range"] = struct.unpack_from("<fff", w, 232)
    h["ntensors"] = struct.unpack_from("<I", w, 244)[0]
    h["body"], h["zbody"] = struct.unpack_from("<QQ", w, 248)
    h["zdata"] = w[264:264 + h["zbody"]]
    h["sig"] = w[264 + h["zbody"]:]
    return h


def verify(w, pk, tag=TAG):
    """Whether the upload's signature verifies under public key pk (bytes), by
    `tessera keys verify`: the signature is the 64 bytes at 264 + Z, made with
    tag tessera/gradient/v1 over the BLAKE2b-256 of bytes [0, 264 + Z)
    (docs/FORMATS.md 7.1; keys verify adds the domain prefix of section 1).
    True on exit 0 + "ok", False on exit 1 + "does not verify"; any other
    outcome (a usage error, a crash) raises, so it can not pass for a refusal."""
    z = struct.unpack_from("<Q", w, 256)[0]
    digest = hashlib.blake2b(w[:264 + z], digest_size=32).digest()
    sig = w[264 + z:264 + z + 64]
    rc, out, err = run("keys", "verify", "--pubkey", "0x" + pk.hex(), "--tag", tag, "--sig", sig.hex(),
                       "--hex", digest.hex())
    if rc == 0 and out == "ok\n":
        return True
    if rc == 1 and out == "" and "signature does not verify" in err:
        return False
    raise RuntimeError(f"tessera keys verify: exit {rc}: {out}{err}")


def parse_body(b, bins):
    recs, p = {}, 0
    while p < len(b):
        (nl,) = struct.unpack_from("<H", b, p)
        p += 2
        name = b[p:p + nl].decode()
        p += nl
        nd = b[p]
        p += 1
        shape = list(struct.unpack_from("<%dI" % nd, b, p))
        p += 4 * nd
        chunk = list(b[p:p + nd])
        p += nd
        (k,) = struct.unpack_from("<H", b, p)
        p += 2
        (nv,) = struct.unpack_from("<I", b, p)
        p += 4
        (shift,) = struct.unpack_from("<f", b, p)
        p += 4
        lut = np.frombuffer(b[p:p + 4 * bins], dtype="<f4").copy()
        p += 4 * bins
        ib, cb = struct.unpack_from("<II", b, p)
        p += 8
        raw = np.frombuffer(b[p:p + ib], dtype=np.uint8).astype(np.uint16).reshape(-1, 3)
        p += ib
        idx = np.empty(nv, dtype=np.uint16)
        idx[0::2] = raw[:, 0] | ((raw[:, 1] & 0xF) << 8)
        idx[1::2] = (raw[:, 1] >> 4) | (raw[:, 2] << 4)
        cbytes = np.frombuffer(b[p:p + cb], dtype=np.uint8)
        p += cb
        if bins == 4:
            codes = np.stack([(cbytes >> s) & 3 for s in (0, 2, 4, 6)], axis=1).reshape(-1)[:nv]
        else:
            codes = cbytes.copy()
        recs[name] = dict(shape=shape, chunk=chunk, k=k, nv=nv, shift=np.float32(shift), lut=lut, idx=idx,
                          codes=codes.astype(np.int64))
    return recs


# ------------------------------------------------ reference SparseLoCo
def chunk_of(s, target=64):
    for d in range(min(target, s), 1, -1):
        if s % d == 0:
            return d
    return 1


def tiles_of(x):
    """(tiles, tile_numel) view in the protocol's order; and the chunk sizes."""
    if x.ndim == 1:
        w = chunk_of(x.shape[0])
        return x.reshape(-1, w), (1, w)
    R, C = x.shape
    h, w = chunk_of(R), chunk_of(C)
    return x.reshape(R // h, h, C // w, w).transpose(0, 2, 1, 3).reshape(-1, h * w), (h, w)


def untile(t, shape, ch):
    if len(shape) == 1:
        return t.reshape(shape)
    R, C = shape
    h, w = ch
    return t.reshape(R // h, C // w, h, w).transpose(0, 2, 1, 3).reshape(R, C)


def seqsum(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.cumsum(a)[-1]) if a.size else 0.0


def blocksum(a, k):
    """docs/FORMATS.md 7.3: per tile of k values a sequential double sum from
    +0.0, then a pairwise tree over the tile sums, level by level (an odd last
    element carried up unchanged)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, k)
    s = [seqsum(t) for t in a]
    if not s:
        return 0.0
    while len(s) > 1:
        s = [s[2 * i] + s[2 * i + 1] for i in range(len(s) // 2)] + ([s[-1]] if len(s) % 2 else [])
    return s[0]


def quantize(v, k, bins, rng):
    n = v.size
    shift = np.float32(blocksum(v, k) / n) if n else np.float32(0)
    c = (v - shift).astype(np.float32)
    scale = np.float32(1.0)
    if n >= 2:
        sd = np.sqrt(blocksum(c.astype(np.float64) ** 2, k)) / np.sqrt(float(n - 1))
        scale = np.float32(float(rng) * sd / bins)
        if not (scale > 0) or not np.isfinite(scale):
            scale = np.float32(1.0)
    q = np.rint((c / scale).astype(np.float32) + np.float32(bins // 2)).astype(np.float32)
    codes = np.clip(q, 0, bins - 1).astype(np.int64)
    lut = np.zeros(bins, dtype=np.float32)
    for b in range(bins):
        m = codes == b
        if m.any():
            # the values with code b, tile by tile (zeros elsewhere add +0.0)
            lut[b] = np.float32(blocksum(np.where(m, c, 0.0), k) / m.sum())
    return codes, lut, shift


def reference_compress(delta, ef, k, bins, beta, alpha, rng):
    """Returns per tensor: (offsets per tile, codes, lut, shift, sent dense, ef_after dense)."""
    out = {}
    for name, d in delta.items():
        en = (np.float32(beta) * ef[name]).astype(np.float32) + (np.float32(alpha) * d).astype(np.float32)
        en = en.astype(np.float32)
        t, ch = tiles_of(en)
        kk = min(k, t.shape[1]) & ~1
        sel = np.empty((t.shape[0], kk), dtype=np.int64)
        for i in range(t.shape[0]):
            order = np.lexsort((np.arange(t.shape[1]), -np.abs(t[i])))
            sel[i] = np.sort(order[:kk])
        vals = np.take_along_axis(t, sel, axis=1).reshape(-1)
        codes, lut, shift = quantize(vals, kk, bins, rng)
        sent_vals = (lut[codes] + shift).astype(np.float32)
        st = np.zeros_like(t)
        np.put_along_axis(st, sel, sent_vals.reshape(sel.shape), axis=1)
        sent = untile(st, d.shape, ch)
        after_t = t.copy()
        kept = np.take_along_axis(t, sel, axis=1).reshape(-1)
        # the residual r with fl(r + sent) == ef_new (FORMATS 7.5): fl(ef_new - sent), or its fp32 neighbour
        r = (kept - sent_vals).astype(np.float32)
        for cand in (np.nextafter(r, np.float32(np.inf)), np.nextafter(r, np.float32(-np.inf))):
            bad = (r + sent_vals).astype(np.float32) != kept
            good = (cand + sent_vals).astype(np.float32) == kept
            r = np.where(bad & good, cand, r).astype(np.float32)
        np.put_along_axis(after_t, sel, r.reshape(sel.shape), axis=1)
        out[name] = dict(sel=sel, codes=codes, lut=lut, shift=shift, sent=sent, ef_after=untile(after_t, d.shape, ch),
                         chunk=ch, k=kk)
    return out


def reference_aggregate(peers, shapes):
    """peers: list of (uid, recs) -> dense g per tensor (clip to the lower median norm, mean over selectors)."""
    peers = sorted(peers, key=lambda p: p[0])
    g = {}
    for name, shape in shapes.items():
        z = np.zeros(shape, dtype=np.float32)
        tz, ch = tiles_of(z)
        vals, norms = [], []
        for _, recs in peers:
            r = recs[name]
            v = (r["lut"][r["codes"]] + r["shift"]).astype(np.float32)
            vals.append(v)
            norms.append(np.sqrt(np.sum(v.astype(np.float64) ** 2)))
        med = sorted(norms)[(len(norms) - 1) // 2]
        s = np.zeros_like(tz)
        cnt = np.zeros(tz.shape, dtype=np.int64)
        for (_, recs), v, nrm in zip(peers, vals, norms):
            r = recs[name]
            f = np.float32(min(1.0, med / (nrm + 1e-8)))
            sel = r["idx"].astype(np.int64).reshape(tz.shape[0], -1)
            np.add.at(s, (np.arange(tz.shape[0])[:, None], sel), (v * f).astype(np.float32).reshape(sel.shape))
            np.add.at(cnt, (np.arange(tz.shape[0])[:, None], sel), 1)
        gt = np.where(cnt > 0, s / np.maximum(cnt, 1), 0).astype(np.float32)
        g[name] = untile(gt, shape, ch)
    return g


# ------------------------------------------------------------------ test
tmp = tempfile.mkdtemp(prefix="t_codec-")
env = dict(os.environ, TESSERA_HOME=os.path.join(tmp, "home"))
try:
    for hk in ("m1", "m2"):
        rc, out, err = run("keygen", "--wallet", "w", "--hotkey", hk, env=env)
        if rc:
            report("codec_keygen", False, err)
            sys.exit(1)
    pk = {}
    for hk in ("m1", "m2"):
        pk[hk] = bytes.fromhex(json.load(open(os.path.join(tmp, "home", "wallets", "w", "hotkeys", hk)))["publicKey"][2:])

    rng = np.random.default_rng(1234)
    shapes = {
        "model.embed_tokens.weight": (87, 64),  # chunks 29 x 64
        "model.layers.0.self_attn.q_proj.weight": (64, 128),
        "model.layers.0.input_layernorm.weight": (64,),
        "model.norm.weight": (10,),  # one tile of 10: k clamped to 10, dense
    }
    K, BETA, ALPHA = 16, np.float32(0.95), np.float32(1.0)
    delta1 = {n: (rng.standard_normal(s) * 0.01).astype(np.float32) for n, s in shapes.items()}
    delta2 = {n: (rng.standard_normal(s) * 0.03).astype(np.float32) for n, s in shapes.items()}
    ef0 = {n: (rng.standard_normal(s) * 0.02).astype(np.float32) for n, s in shapes.items()}
    # ties at the selection boundary: equal magnitudes of both signs
    delta1["model.layers.0.self_attn.q_proj.weight"][3, 5:40:3] = 0.05
    delta1["model.layers.0.self_attn.q_proj.weight"][9, 5:40:3] = -0.05
    ef0["model.layers.0.self_attn.q_proj.weight"][3, 5:40:3] = 0  # so ef_new ties exactly there
    ef0["model.layers.0.self_attn.q_proj.weight"][9, 5:40:3] = 0
    p = lambda n: os.path.join(tmp, n)
    write_st(p("d1.safetensors"), delta1)
    write_st(p("d2.safetensors"), delta2)
    write_st(p("ef0.safetensors"), ef0)
    base = "ab" * 32
    common = ["--wallet", "w", "--run", "run-1", "--window", "17", "--k", str(K), "--config-hash", "cd" * 32,
              "--base-hash", base, "--sample-digest", "ef" * 32]
    rc, out, err = run("codec", "compress", "--delta", p("d1.safetensors"), "--ef", p("ef0.safetensors"), "--out",
                       p("g1"), "--ef-out", p("ef1.safetensors"), "--hotkey", "m1", "--uid", "3", *common, env=env)
    report("codec_compress_runs", rc == 0 and os.path.exists(p("g1")), out + err)
    rc2, out2, err2 = run("codec", "compress", "--delta", p("d2.safetensors"), "--out", p("g2"), "--ef-out",
                          p("ef2.safetensors"), "--hotkey", "m2", "--uid", "8", *common, env=env)
    report("codec_compress_without_ef", rc2 == 0, out2 + err2)
    if rc or rc2:
        sys.exit(1)

    w1, w2 = open(p("g1"), "rb").read(), open(p("g2"), "rb").read()
    h1 = parse_wire(w1)
    ok = (h1["magic"] == b"TESSGRAD" and h1["version"] == 1 and h1["flags"] == 0 and h1["hdrlen"] == 264 and
          h1["scheme"] == 1 and h1["reserved"] == b"\0\0" and h1["run"] == "run-1" and h1["window"] == 17 and h1["uid"] == 3 and h1["hotkey"] == pk["m1"] and
          h1["base"] == bytes.fromhex(base) and h1["config"] == bytes.fromhex("cd" * 32) and
          h1["sample"] == bytes.fromhex("ef" * 32) and (h1["k"], h1["bins"], h1["chunk"]) == (K, 4, 64) and
          np.float32(h1["beta"]) == BETA and h1["ntensors"] == 4 and len(w1) == 264 + h1["zbody"] + 64)
    report("codec_wire_header_matches_formats_md", ok, {k: v for k, v in h1.items() if k not in ("zdata", "sig")})
    # the upload's signature, checked by `tessera keys verify` (an sr25519
    # verifier of its own, not the decoder): it verifies under its signer m1
    # and under no other key (m2), and not under another tag; m2's upload
    # verifies under m2, so the check can tell keys apart both ways
    try:
        ok = (verify(w1, pk["m1"]) and not verify(w1, pk["m2"]) and verify(w2, pk["m2"]) and
              not verify(w2, pk["m1"]) and not verify(w1, pk["m1"], tag="tessera/aggregate/v1"))
        detail = ""
    except RuntimeError as ex:
        ok, detail = False, str(ex)
    report("codec_wire_signature_verifies_with_tessera_keys_verify", ok, detail)
    # a tampered upload fails: a flipped bit in the window (inside what is
    # signed), in the body, in the signature itself
    try:
        fails = []
        for name, at in (("window", 88), ("body", 264 + h1["zbody"] // 2), ("signature", len(w1) - 40)):
            bad = bytearray(w1)
            bad[at] ^= 1
            if verify(bytes(bad), pk["m1"]):
                fails.append(f"a flipped bit in the {name} (byte {at}) still verifies")
        ok, detail = not fails, "\n".join(fails)
    except RuntimeError as ex:
        ok, detail = False, str(ex)
    report("codec_wire_signature_fails_for_a_tampered_upload", ok, detail)

    zstd = shutil.which("zstd")
    recs1 = recs2 = None
    if not zstd:
        skip("codec_wire_body_matches_reference", "the zstd command is not installed")
    else:
        def body_of(h):
            b = subprocess.run([zstd, "-d", "-c"], input=h["zdata"], capture_output=True).stdout
            return b

        b1 = body_of(h1)
        recs1 = parse_body(b1, 4)
        recs2 = parse_body(body_of(parse_wire(w2)), 4)
        ref = reference_compress(delta1, ef0, K, 4, BETA, ALPHA, 6.0)
        problems = []
        if len(b1) != h1["body"]:
            problems.append(f"body {len(b1)} bytes, header says {h1['body']}")
        for n, s in shapes.items():
            r, q = recs1[n], ref[n]
            if r["shape"] != list(s) or tuple(r["chunk"]) != (q["chunk"] if len(s) == 2 else (q["chunk"][1],)):
                problems.append(f"{n}: shape/chunk {r['shape']} {r['chunk']}")
            if r["k"] != q["k"]:
                problems.append(f"{n}: k {r['k']} vs {q['k']}")
            if not np.array_equal(r["idx"].astype(np.int64), q["sel"].reshape(-1)):
                problems.append(f"{n}: selected offsets differ")
            if not np.array_equal(r["codes"], q["codes"]):
                problems.append(f"{n}: codes differ")
            if r["lut"].tobytes() != q["lut"].tobytes() or r["shift"].tobytes() != q["shift"].tobytes():
                problems.append(f"{n}: lut/shift {r['lut']} {r['shift']} vs {q['lut']} {q['shift']}")
        report("codec_wire_body_matches_reference", not problems, "\n".join(problems))
        report("codec_norm_vector_travels_dense", recs1["model.norm.weight"]["k"] == 10 and
               recs1["model.norm.weight"]["nv"] == 10)

        ef1, meta = read_st(p("ef1.safetensors"))
        diff = [n for n in shapes if ef1[n].tobytes() != ref[n]["ef_after"].tobytes()]
        report("codec_ef_out_is_ef_new_minus_sent_bit_for_bit", not diff and meta.get("window") == "17", diff)

        rc, out, err = run("codec", "decode", p("g1"), "--out", p("dense1.safetensors"))
        dense, dmeta = read_st(p("dense1.safetensors")) if rc == 0 else ({}, {})
        diff = [n for n in shapes if rc == 0 and dense[n].tobytes() != ref[n]["sent"].tobytes()]
        report("codec_decode_writes_the_sent_values", rc == 0 and not diff and dmeta.get("uid") == "3", out + err + str(diff))

        rc, out, err = run("codec", "aggregate", p("g2"), p("g1"), "--out", p("agg.safetensors"))
        if rc == 0:
            g, gmeta = read_st(p("agg.safetensors"))
            want = reference_aggregate([(8, recs2), (3, recs1)], shapes)
            worst = max(float(np.max(np.abs(g[n] - want[n]))) for n in shapes)
            scale = max(float(np.max(np.abs(want[n]))) for n in shapes)
            report("codec_aggregate_matches_reference", worst <= 1e-6 * scale and gmeta.get("uids") == "3,8",
                   f"worst {worst} of {scale}; meta {gmeta}")
        else:
            report("codec_aggregate_matches_reference", False, out + err)

        rc, out, err = run("codec", "overlap", p("g1"), p("g2"), "--json")
        want = []
        for n, s in shapes.items():
            a, b = recs1[n], recs2[n]
            t, _ = tiles_of(np.zeros(s, dtype=np.float32))
            if a["k"] >= t.shape[1]:
                continue
            for i in range(t.shape[0]):
                sa = set(a["idx"][i * a["k"]:(i + 1) * a["k"]].tolist())
                sb = set(b["idx"][i * b["k"]:(i + 1) * b["k"]].tolist())
                want.append(len(sa & sb) / a["k"])
        got = json.loads(out)["overlap"] if rc == 0 else None
        report("codec_overlap_matches_reference", rc == 0 and abs(got - sum(want) / len(want)) < 1e-6,
               f"{out}{err} want {sum(want) / len(want)}")

    rc, out, err = run("codec", "overlap", p("g1"), p("g1"))
    report("codec_overlap_of_an_upload_with_itself_is_1", rc == 0 and out.strip() == "1.000000", out + err)

    rc, out, err = run("codec", "inspect", p("g1"))
    try:
        j = json.loads(out)
        ok = (rc == 0 and j["valid"] and j["signature_valid"] and j["uid"] == 3 and j["window"] == 17 and
              j["signer"] == "0x" + pk["m1"].hex() and len(j["tensors"]) == 4 and j["codec"]["k"] == K and
              j["sizes"]["wire"] == len(w1) and abs(j["ratio_fp32"] - j["sizes"]["dense_fp32"] / len(w1)) < 0.01)
    except (ValueError, KeyError) as ex:
        ok, out = False, f"{ex}: {out}"
    report("codec_inspect_json", ok, out + err)

    bad = bytearray(w1)
    bad[300] ^= 0x10
    open(p("bad"), "wb").write(bytes(bad))
    rc, out, err = run("codec", "inspect", p("bad"))
    try:
        j = json.loads(out)
        ok = rc == 1 and not j["valid"] and not j["signature_valid"] and j["reject"]["reason"] == "bad_signature"
    except (ValueError, KeyError) as ex:
        ok, out = False, f"{ex}: {out}"
    report("codec_inspect_reports_a_bad_signature", ok, out + err)

    rc, out, err = run("codec", "inspect", p("g1"), "--signer", "0x" + pk["m2"].hex())
    report("codec_inspect_with_the_wrong_signer", rc == 1 and '"bad_signature"' in out, out + err)

    rc, out, err = run("codec", "decode", p("bad"), "--out", p("x.safetensors"))
    report("codec_decode_refuses_a_tampered_upload", rc == 1 and err.startswith("tessera: ") and
           err.count("\n") == 1 and "bad_signature" in err and not os.path.exists(p("x.safetensors")), err)

    # byte 81, the signature scheme: 0 (Ed25519, an earlier Tessera's upload)
    # is refused by it, before the signature is checked
    old = bytearray(w1)
    old[81] = 0
    open(p("scheme0"), "wb").write(bytes(old))
    rc, out, err = run("codec", "inspect", p("scheme0"))
    try:
        j = json.loads(out)
        ok = (rc == 1 and not j["valid"] and not j["signature_valid"] and j["reject"]["reason"] == "bad_version" and
              "signature scheme 0" in j["reject"]["message"] and "Ed25519" in j["reject"]["message"])
    except (ValueError, KeyError) as ex:
        ok, out = False, f"{ex}: {out}"
    report("codec_inspect_refuses_signature_scheme_0", ok, out + err)
    rc, out, err = run("codec", "decode", p("scheme0"), "--out", p("x.safetensors"))
    report("codec_decode_refuses_signature_scheme_0", rc == 1 and err.count("\n") == 1 and
           "earlier Tessera" in err and not os.path.exists(p("x.safetensors")), err)

    open(p("trunc"), "wb").write(w1[:-10])
    rc, out, err = run("codec", "decode", p("trunc"), "--out", p("x.safetensors"))
    report("codec_decode_refuses_a_truncated_upload", rc == 1 and "truncated" in err, err)

    # an upload of another window cannot join an aggregate
    rc, out, err = run("codec", "compress", "--delta", p("d2.safetensors"), "--out", p("g3"), "--ef-out",
                       p("ef3.safetensors"), "--hotkey", "m2", "--uid", "9", *[("18" if a == "17" else a) for a in common],
                       env=env)
    rc, out, err = run("codec", "aggregate", p("g1"), p("g3"), "--out", p("agg2.safetensors"))
    report("codec_aggregate_refuses_mixed_windows", rc == 1 and "wrong_window" in err, err)

    write_st(p("bad_ef.safetensors"), {n: np.zeros((3,), np.float32) for n in shapes})
    rc, out, err = run("codec", "compress", "--delta", p("d1.safetensors"), "--ef", p("bad_ef.safetensors"), "--out",
                       p("g4"), "--ef-out", p("ef4.safetensors"), "--hotkey", "m1", "--uid", "3", *common, env=env)
    report("codec_compress_refuses_a_mismatched_ef", rc == 1 and "shape" in err and not os.path.exists(p("g4")), err)

    nan = dict(delta1)
    nan["model.norm.weight"] = nan["model.norm.weight"].copy()
    nan["model.norm.weight"][2] = np.nan
    write_st(p("dnan.safetensors"), nan)
    rc, out, err = run("codec", "compress", "--delta", p("dnan.safetensors"), "--out", p("g5"), "--ef-out",
                       p("ef5.safetensors"), "--hotkey", "m1", "--uid", "3", *common, env=env)
    report("codec_compress_refuses_non_finite_values", rc == 1 and "not finite" in err and
           not os.path.exists(p("g5")) and not os.path.exists(p("ef5.safetensors")), err)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if failures else 0)
