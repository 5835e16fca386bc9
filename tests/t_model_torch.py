#!/usr/bin/python3
"""t_model_torch.py - the model against a PyTorch reference.

The reference below is a LLaMA decoder written for this test from the
Hugging Face LlamaForCausalLM definition (RMSNorm, rotary embeddings in the
rotate-half convention with fp32 tables as HF builds them, grouped KV heads
repeated as repeat_kv does, causal softmax, SwiGLU MLP, tied or untied head),
in plain torch since `transformers` is not installed.  It runs in float64 from
the very safetensors file `tessera model init` wrote, on the same tokens, and
is compared with what `tessera` computes in float32:

  - the seeded initialisation, re-derived from its specification
    (docs/FORMATS.md section 6) with PyNaCl and hashlib;
  - the config hash (canonical encoding, BLAKE2b-256);
  - logits (relative to the largest, below 1e-4), the first step's loss (1e-5
    relative) and every gradient tensor (normalised error below 1e-6);
  - ten AdamW steps through `tessera train` (warm-up + cosine schedule,
    gradient clipping that engages) against torch.optim.AdamW and
    torch.nn.utils.clip_grad_norm_: the loss, learning rate and gradient norm
    of every step, and the final weights.

For scale, the same reference in float32 is compared with float64 too and
its errors printed next to ours.

Prints one line per check (ok / FAIL / skip), as tests/run.sh expects.  The
module can also be imported (bench/b_model_torch.py uses the reference).
"""
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    HAVE_TORCH = True
except ImportError:  # pragma: no cover - reported as skips
    HAVE_TORCH = False


# ----------------------------------------------------------------- safetensors

DTYPES = {"F32": ("<f4", 4), "F64": ("<f8", 8), "I32": ("<i4", 4), "U16": ("<u2", 2)}


def st_read(path):
    """Reads a safetensors file into {name: numpy array} (F32/F64/I32/U16)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    base = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, size = DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        a = np.frombuffer(raw[base + b:base + e], dtype=dt).reshape(info["shape"])
        out[name] = a.copy()
    return out, header.get("__metadata__", {})


def shard_write(path, tokens):
    """llm.c token shard: 256 int32 header (magic, version 1, count), uint16 tokens."""
    h = np.zeros(256, dtype="<i4")
    h[0], h[1], h[2] = 20240520, 1, len(tokens)
    with open(path, "wb") as f:
        f.write(h.tobytes())
        f.write(np.asarray(tokens, dtype="<u2").tobytes())


# ------------------------------------------------------------------- reference

def rope_tables(hd, theta, T):
    """cos, sin of shape (T, hd) as Hugging Face builds them: fp32 inv_freq and
    fp32 angles (also for a float64 model), emb = cat(freqs, freqs)."""
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    t = torch.arange(T, dtype=torch.int64).float()
    freqs = torch.outer(t, inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Llama(torch.nn.Module if HAVE_TORCH else object):
    """LlamaForCausalLM, parameters named as Hugging Face names them."""

    def __init__(self, cfg, dtype=None):
        super().__init__()
        self.cfg = cfg
        dtype = dtype or torch.float64
        C, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
        nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
        hd = cfg.get("head_dim", C // nh)
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.tied = cfg.get("tie_word_embeddings", False)
        P = torch.nn.Parameter
        z = lambda *s: P(torch.zeros(*s, dtype=dtype))
        self.p = torch.nn.ParameterDict()
        names = [("model.embed_tokens.weight", (V, C))]
        for l in range(cfg["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            names += [(pre + "self_attn.q_proj.weight", (nh * hd, C)),
                      (pre + "self_attn.k_proj.weight", (nkv * hd, C)),
                      (pre + "self_attn.v_proj.weight", (nkv * hd, C)),
                      (pre + "self_attn.o_proj.weight", (C, nh * hd)),
                      (pre + "mlp.gate_proj.weight", (F, C)),
                      (pre + "mlp.up_proj.weight", (F, C)),
                      (pre + "mlp.down_proj.weight", (C, F)),
                      (pre + "input_layernorm.weight", (C,)),
                      (pre + "post_attention_layernorm.weight", (C,))]
        names.append(("model.norm.weight", (C,)))
        if not self.tied:
            names.append(("lm_head.weight", (V, C)))
        self.names = [n for n, _ in names]
        for n, s in names:
            self.p[n.replace(".", "__")] = z(*s)

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def load(self, tensors):
        with torch.no_grad():
            for n in self.names:
                src = torch.from_numpy(np.asarray(tensors[n]))
                self.w(n).copy_(src.to(self.w(n).dtype))

    def named(self):
        return [(n, self.w(n)) for n in self.names]

    def rmsnorm(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    def forward(self, ids):
        B, T = ids.shape
        nh, nkv, hd = self.nh, self.nkv, self.hd
        x = self.w("model.embed_tokens.weight")[ids]
        cos, sin = rope_tables(hd, self.cfg.get("rope_theta", 10000.0), T)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
        for l in range(self.cfg["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            h = self.rmsnorm(x, self.w(pre + "input_layernorm.weight"))
            q = (h @ self.w(pre + "self_attn.q_proj.weight").T).view(B, T, nh, hd).transpose(1, 2)
            k = (h @ self.w(pre + "self_attn.k_proj.weight").T).view(B, T, nkv, hd).transpose(1, 2)
            v = (h @ self.w(pre + "self_attn.v_proj.weight").T).view(B, T, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = nh // nkv  # repeat_kv: query head i reads KV head i // rep
            k = k[:, :, None].expand(B, nkv, rep, T, hd).reshape(B, nh, T, hd)
            v = v[:, :, None].expand(B, nkv, rep, T, hd).reshape(B, nh, T, hd)
            s = (q @ k.transpose(2, 3)) / math.sqrt(hd) + mask
            a = torch.softmax(s, dim=-1) @ v
            x = x + a.transpose(1, 2).reshape(B, T, nh * hd) @ self.w(pre + "self_attn.o_proj.weight").T
            h = self.rmsnorm(x, self.w(pre + "post_attention_layernorm.weight"))
            g = torch.nn.functional.silu(h @ self.w(pre + "mlp.gate_proj.weight").T)
            u = h @ self.w(pre + "mlp.up_proj.weight").T
            x = x + (g * u) @ self.w(pre + "mlp.down_proj.weight").T
        x = self.rmsnorm(x, self.w("model.norm.weight"))
        head = self.w("model.embed_tokens.weight" if self.tied else "lm_head.weight")
        return x @ head.T

    def loss(self, rows):
        """rows: (B, T+1) tokens; mean cross-entropy of the next-token targets."""
        logits = self.forward(rows[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 rows[:, 1:].reshape(-1), ignore_index=-100)


def schedule_lr(lr, warmup, total, min_ratio, s):
    """The documented schedule (model.h, docs/FORMATS.md), written again here."""
    lo = min_ratio * lr
    if s < warmup:
        return lr * (s + 1) / warmup
    if s >= total:
        return lo
    p = (s - warmup) / (total - warmup)
    return lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi * p))


# ------------------------------------------------------------------ the checks

class Checker:
    def __init__(self):
        self.failed = 0

    def check(self, name, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + name)
        if detail:
            for line in detail.splitlines():
                print("    " + line)
        if not ok:
            self.failed += 1
        sys.stdout.flush()

    def skip(self, name, why):
        print("skip " + name)
        print("    skipped: " + why)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr.strip()}")
    return r.stdout


def init_reference(name, shape, seed, std=0.02):
    """The seeded initialisation of docs/FORMATS.md section 6."""
    from nacl.utils import randombytes_deterministic
    n = int(np.prod(shape))
    out = np.empty(n, dtype=np.float32)
    for b in range(0, (n + 16383) // 16384):
        key = hashlib.blake2b(b"tessera-init-v1\x00" + struct.pack("<QQ", seed, b) + name.encode(),
                              digest_size=32).digest()
        m = min(16384, n - b * 16384)
        pairs = (m + 1) // 2
        u = np.frombuffer(randombytes_deterministic(pairs * 8, key), dtype="<u4").astype(np.float64)
        u1 = (u[0::2] + 1.0) / 4294967296.0
        u2 = u[1::2] / 4294967296.0
        r = np.sqrt(-2.0 * np.log(u1))
        z = np.empty(2 * pairs)
        z[0::2] = std * r * np.cos(2 * np.pi * u2)
        z[1::2] = std * r * np.sin(2 * np.pi * u2)
        out[b * 16384:b * 16384 + m] = z[:m].astype(np.float32)
    return out.reshape(shape)


def config_hash(cfg):
    C, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    ints = [cfg["vocab_size"], C, cfg["intermediate_size"], cfg["num_hidden_layers"], nh,
            cfg.get("num_key_value_heads", nh), cfg.get("head_dim", C // nh),
            cfg.get("max_position_embeddings", 2048)]
    b = b"tessera-model-config-v1\x00" + struct.pack("<8I", *ints)
    b += struct.pack("<dd", cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0))
    b += bytes([1 if cfg.get("tie_word_embeddings", False) else 0])
    return hashlib.blake2b(b, digest_size=32).hexdigest()


def nerr(a, b):
    """Normalised error ||a - b|| / ||b||."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (d if d > 0 else 1.0))


def conformance(ck, tessera, tmp, label, cfg_json, B, T, steps, lr, warmup, clip):
    d = os.path.join(tmp, label)
    os.makedirs(d)
    cfgp = os.path.join(d, "in_config.json")
    with open(cfgp, "w") as f:
        json.dump(cfg_json, f)
    init = os.path.join(d, "init")
    run([tessera, "model", "init", "--config", cfgp, "--seed", "7", "--out", init])
    w0, meta = st_read(os.path.join(init, "model.safetensors"))
    with open(os.path.join(init, "config.json")) as f:
        cfg = json.load(f)
    ref = Llama(cfg, torch.float64)

    # --- the files: names, shapes, metadata, config, init
    want = {n: tuple(p.shape) for n, p in ref.named()}
    got = {n: a.shape for n, a in w0.items()}
    ck.check(f"{label}/checkpoint_names_and_shapes", want == got and meta.get("format") == "pt",
             "" if want == got else f"missing {sorted(set(want) - set(got))} extra {sorted(set(got) - set(want))}")
    ck.check(f"{label}/config_json_is_llama", cfg.get("model_type") == "llama"
             and cfg.get("architectures") == ["LlamaForCausalLM"] and cfg.get("hidden_act") == "silu"
             and all(cfg[k] == v for k, v in cfg_json.items()))
    info = run([tessera, "model", "info", "--model", init])
    want_hash = config_hash(cfg)
    ck.check(f"{label}/config_hash_canonical", ("config hash " + want_hash) in info,
             f"expected {want_hash}\n{info.strip()}")
    worst = 0.0
    for n, a in w0.items():
        if a.ndim == 1:
            worst = max(worst, float(np.abs(a - 1.0).max()))
        else:
            worst = max(worst, float(np.abs(a - init_reference(n, a.shape, 7)).max()))
    ck.check(f"{label}/init_matches_specification", worst <= 2e-9, f"largest difference {worst:.3g}")

    # --- data: random tokens; sample k is the T + 1 tokens from k * T on
    #     (the data module's definition, docs/FORMATS.md section 5)
    rng = np.random.default_rng(12345)
    V = cfg["vocab_size"]
    toks = rng.integers(0, V, size=(steps * B + 1) * (T + 1), dtype=np.int64)
    shard = os.path.join(d, "data.bin")
    shard_write(shard, toks)
    rows = torch.from_numpy(np.stack([toks[k * T:k * T + T + 1] for k in range(steps * B)]))

    # --- logits
    lf = os.path.join(d, "logits.safetensors")
    run([tessera, "model", "logits", "--model", init, "--data", shard, "--samples", str(B), "--seq", str(T),
         "--out", lf, "--threads", "2"])
    lc = st_read(lf)[0]["logits"]
    ref.load(w0)
    ref32 = Llama(cfg, torch.float32)
    ref32.load(w0)
    with torch.no_grad():
        lt = ref.forward(rows[:B, :T]).numpy()
        l32 = ref32.forward(rows[:B, :T]).numpy()
    scale = float(np.abs(lt).max())
    e_c = float(np.abs(lc - lt).max()) / scale
    e_32 = float(np.abs(l32 - lt).max()) / scale
    ck.check(f"{label}/logits_1e-4", e_c < 1e-4,
             f"max |tessera - torch64| / max|logit| = {e_c:.2e} (torch float32: {e_32:.2e})")

    # --- ten steps through the trainer
    log = os.path.join(d, "log.jsonl")
    grads = os.path.join(d, "grads.safetensors")
    out = os.path.join(d, "trained")
    run([tessera, "train", "--model", init, "--data", shard, "--batch", str(B), "--seq", str(T),
         "--steps", str(steps), "--lr", repr(lr), "--warmup", str(warmup), "--lr-total", str(steps),
         "--clip", repr(clip), "--save-grads", grads, "--log-json", log, "--out", out, "--threads", "2"])
    with open(log) as f:
        recs = [json.loads(line) for line in f]
    gc, _ = st_read(grads)

    opt = torch.optim.AdamW(ref.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    opt32 = torch.optim.AdamW(ref32.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    loss_rel, norm_rel, lr_ok, clipped = [], [], True, 0
    for s in range(steps):
        batch = rows[s * B:(s + 1) * B]
        lr_s = schedule_lr(lr, warmup, steps, 0.1, s)
        for o in (opt, opt32):
            for g in o.param_groups:
                g["lr"] = lr_s
            o.zero_grad()
        loss = ref.loss(batch)
        loss.backward()
        ref32.loss(batch).backward()
        if s == 0:
            worst, worst32, bad = 0.0, 0.0, []
            for n, p in ref.named():
                e = nerr(gc[n], p.grad.numpy())
                e32 = nerr(ref32.w(n).grad.numpy(), p.grad.numpy())
                worst, worst32 = max(worst, e), max(worst32, e32)
                if not e < 1e-6:
                    bad.append(f"{n}: normalised error {e:.2e}")
            ck.check(f"{label}/gradients_1e-6", not bad and set(gc) == set(ref.names),
                     "".join(b + "\n" for b in bad) +
                     f"largest normalised error {worst:.2e} (torch float32: {worst32:.2e})")
            ck.check(f"{label}/first_loss_1e-5", abs(recs[0]["loss"] - loss.item()) <= 1e-5 * abs(loss.item()),
                     f"tessera {recs[0]['loss']:.9g} torch {loss.item():.9g}")
        norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), clip).item()
        torch.nn.utils.clip_grad_norm_(ref32.parameters(), clip)
        clipped += norm > clip
        opt.step()
        opt32.step()
        loss_rel.append(abs(recs[s]["loss"] - loss.item()) / abs(loss.item()))
        norm_rel.append(abs(recs[s]["grad_norm"] - norm) / norm)
        lr_ok &= abs(recs[s]["lr"] - lr_s) <= 1e-7 * lr_s
        recs[s]["torch_loss"] = loss.item()
    curve = "\n".join(f"step {r['step']:2d}  tessera {r['loss']:.7f}  torch {r['torch_loss']:.7f}  "
                      f"lr {r['lr']:.3e}  norm {r['grad_norm']:.4f}" for r in recs)
    ck.check(f"{label}/adamw_10_step_loss_curve", len(recs) == steps and max(loss_rel) < 1e-5,
             f"largest relative loss difference {max(loss_rel):.2e}\n{curve}")
    ck.check(f"{label}/schedule_and_clipping", lr_ok and max(norm_rel) < 1e-5 and 0 < clipped < steps,
             f"schedule {'matches' if lr_ok else 'DIFFERS'}; gradient norms within {max(norm_rel):.2e}; "
             f"clipping engaged on {clipped} of {steps} steps")
    wf, _ = st_read(os.path.join(out, "model.safetensors"))
    worst = max(nerr(wf[n], p.detach().numpy()) for n, p in ref.named())
    worst32 = max(nerr(ref32.w(n).detach().numpy(), p.detach().numpy()) for n, p in ref.named())
    ck.check(f"{label}/weights_after_10_steps", worst < 1e-5,
             f"largest normalised error {worst:.2e} (torch float32: {worst32:.2e})")


def main():
    ck = Checker()
    if not HAVE_TORCH:
        ck.skip("t_model_torch", "/usr/bin/python3 lacks torch or numpy (Debian python3-torch)")
        return 0
    try:
        import nacl.utils  # noqa: F401
    except ImportError:
        ck.skip("t_model_torch", "/usr/bin/python3 lacks PyNaCl (Debian python3-nacl)")
        return 0
    torch.set_num_threads(2)
    repo = os.environ.get("TESSERA_REPO", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tessera = os.path.join(repo, os.environ.get("BUILD", "build"), "bin", "tessera")
    if not os.access(tessera, os.X_OK):
        ck.check("t_model_torch/binary", False, f"{tessera} is missing; run make first")
        return 1
    tiny = {"vocab_size": 257, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
            "rms_norm_eps": 1e-6, "rope_theta": 10000.0}
    with tempfile.TemporaryDirectory(prefix="tessera-torch-") as tmp:
        # tied (tiny's preset) and untied; T = 80 spans two attention row blocks;
        # at this seed the gradient norms hover around 0.9, so a clip of 0.89
        # engages on some steps and not on others
        for label, tied in (("tiny_tied", True), ("tiny_untied", False)):
            cfg = dict(tiny, tie_word_embeddings=tied)
            try:
                conformance(ck, tessera, tmp, label, cfg, B=3, T=80, steps=10, lr=1e-3, warmup=3, clip=0.89)
            except Exception as ex:  # a crash of a step is a failure with its reason
                ck.check(f"{label}/run", False, f"{type(ex).__name__}: {ex}")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
