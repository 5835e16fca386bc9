#!/usr/bin/env python3
"""gpu_torch.py - the PyTorch side of bench/gpu.sh, on the GPU machine.

  train   the Hugging Face LlamaForCausalLM built from the config.json tessera
          writes (random init), bf16 autocast over fp32 master weights, fused
          AdamW, the same batch and sequence as tessera's benchmark: one JSON
          line with tokens/s and peak GPU memory.  Without `transformers` it
          falls back to the project's own PyTorch reference model
          (tests/t_model_torch.py) and says so in the JSON ("impl").
  logits  loads a checkpoint directory written by `tessera model init` with
          LlamaForCausalLM.from_pretrained, runs the tokens of a shard, and
          compares its logits with a safetensors file written by
          `tessera model logits`: one JSON line with the largest absolute
          difference and the relative RMS difference.
  shard   writes a token shard (docs/FORMATS.md: llm.c layout, uint16) of
          random tokens, for `tessera model logits`.

  python3 bench/gpu_torch.py train --config DIR/config.json --batch 16 --seq 1024 --steps 5 --warmup 2
  python3 bench/gpu_torch.py shard --out FILE --tokens N --vocab V --seed S
  python3 bench/gpu_torch.py logits --model DIR --data FILE --samples N --seq T --tessera FILE
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(cfg_path):
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig.from_json_file(cfg_path)
        torch.manual_seed(1)
        return LlamaForCausalLM(cfg), "transformers LlamaForCausalLM"
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
        from t_model_torch import Llama
        with open(cfg_path) as f:
            cfg = json.load(f)
        torch.manual_seed(1)
        m = Llama(cfg, torch.float32)
        with torch.no_grad():
            for _, p in m.named():
                if p.dim() == 1:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)
        return m, "tests/t_model_torch.py reference (no transformers here)"


def cmd_train(a):
    dev = device()
    m, impl = build_model(a.config)
    m = m.to(dev)
    with open(a.config) as f:
        vocab = json.load(f)["vocab_size"]
    kw = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, **kw)
    g = torch.Generator(device="cpu").manual_seed(2)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0, best, losses = None, 1e30, []
    for s in range(a.warmup + a.steps):
        tok = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=g).to(dev)
        if s == a.warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        ts = time.perf_counter()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = m(tok[:, :-1])
            logits = out.logits if hasattr(out, "logits") else out
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     tok[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if s >= a.warmup:
            best = min(best, time.perf_counter() - ts)
            losses.append(float(loss))
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else 0.0
    print(json.dumps({
        "impl": "torch " + torch.__version__ + " " + impl, "device": str(dev),
        "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "tokens_per_s": a.steps * a.batch * a.seq / dt, "best_tokens_per_s": a.batch * a.seq / best,
        "ms_per_step": 1e3 * dt / a.steps, "gpu_mem_mb": peak, "mean_loss": sum(losses) / len(losses),
    }))


def cmd_shard(a):
    rng = np.random.default_rng(a.seed)
    toks = rng.integers(0, a.vocab, size=a.tokens, dtype=np.int64)
    h = np.zeros(256, dtype=np.int32)
    h[0], h[1], h[2], h[3] = 20240520, 1, a.tokens, a.vocab
    with open(a.out, "wb") as f:
        f.write(h.tobytes())
        f.write(toks.astype(np.uint16).tobytes())


def read_safetensors(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        t = hdr[name]
        assert t["dtype"] == "F32", t["dtype"]
        b, e = t["data_offsets"]
        f.seek(8 + n + b)
        return np.frombuffer(f.read(e - b), dtype=np.float32).reshape(t["shape"])


def cmd_logits(a):
    from transformers import LlamaForCausalLM
    dev = device()
    m = LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).to(dev).eval()
    with open(a.data, "rb") as f:
        h = np.frombuffer(f.read(1024), dtype=np.int32)
        toks = np.frombuffer(f.read(), dtype=np.uint16).astype(np.int64)
    assert h[0] == 20240520
    x = np.stack([toks[i * (a.seq + 1): i * (a.seq + 1) + a.seq] for i in range(a.samples)])
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        ref = m(torch.from_numpy(x).to(dev)).logits.float().cpu().numpy()
    got = read_safetensors(a.tessera, "logits")
    d = got - ref
    print(json.dumps({
        "transformers_loaded": True, "shape": list(ref.shape),
        "max_abs_diff": float(np.abs(d).max()),
        "rel_rms_diff": float(np.sqrt((d.astype(np.float64) ** 2).mean() / (ref.astype(np.float64) ** 2).mean())),
        "argmax_agree": float((got.argmax(-1) == ref.argmax(-1)).mean()),
    }))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--config", required=True)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seq", type=int, default=1024)
    t.add_argument("--steps", type=int, default=5)
    t.add_argument("--warmup", type=int, default=2)
    s = sub.add_parser("shard")
    s.add_argument("--out", required=True)
    s.add_argument("--tokens", type=int, required=True)
    s.add_argument("--vocab", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    lg = sub.add_parser("logits")
    lg.add_argument("--model", required=True)
    lg.add_argument("--data", required=True)
    lg.add_argument("--samples", type=int, default=2)
    lg.add_argument("--seq", type=int, default=128)
    lg.add_argument("--tessera", required=True)
    a = ap.parse_args()
    {"train": cmd_train, "shard": cmd_shard, "logits": cmd_logits}[a.cmd](a)


if __name__ == "__main__":
    main()
