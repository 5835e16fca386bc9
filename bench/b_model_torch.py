#!/usr/bin/python3
"""b_model_torch.py - the PyTorch side of bench/b_model.sh: the same model
(the reference of tests/t_model_torch.py, float32), the same batch, sequence
and thread count, one training step = forward + backward + clip + AdamW.
Prints one JSON line: tokens/s, ms/step, peak RSS.

  /usr/bin/python3 bench/b_model_torch.py --preset small --batch 8 --seq 256 --steps 5 --threads 2
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from t_model_torch import Llama  # noqa: E402

# the shapes of model/config.c's presets (checked against `tessera model info --json` by b_model.sh)
PRESETS = {
    "tiny": dict(vocab_size=257, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "small": dict(vocab_size=257, hidden_size=256, intermediate_size=768, num_hidden_layers=6,
                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
    "124m": dict(vocab_size=50304, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                 num_attention_heads=12, num_key_value_heads=12, tie_word_embeddings=True),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--config", help="a config.json instead of a preset")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.config:
        with open(a.config) as f:
            cfg = json.load(f)
    else:
        cfg = dict(PRESETS[a.preset], rms_norm_eps=1e-6, rope_theta=10000.0)
    torch.manual_seed(1)
    m = Llama(cfg, torch.float32)
    with torch.no_grad():
        for n, p in m.named():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(2)
    t0, loss_sum, best = 0.0, 0.0, 1e30
    for s in range(a.warmup + a.steps):
        rows = torch.randint(0, cfg["vocab_size"], (a.batch, a.seq + 1), generator=g)
        if s == a.warmup:
            t0 = time.perf_counter()
        ts = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = m.loss(rows)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if s >= a.warmup:
            loss_sum += loss.item()
            best = min(best, time.perf_counter() - ts)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "preset": a.preset, "batch": a.batch,
                      "seq": a.seq, "threads": a.threads, "steps": a.steps,
                      "tokens_per_s": round(a.steps * a.batch * a.seq / dt, 1),
                      "best_tokens_per_s": round(a.batch * a.seq / best, 1),
                      "ms_per_step": round(1e3 * dt / a.steps, 1), "peak_rss_mb": round(rss, 1),
                      "mean_loss": round(loss_sum / a.steps, 4)}))


if __name__ == "__main__":
    main()
