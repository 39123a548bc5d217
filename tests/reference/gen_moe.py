#!/usr/bin/python3
"""PyTorch reference values for the MoE layer: a small Mixtral-style layer (softmax top-2,
renormalized, Switch aux loss and z-loss; once dropless and once with capacity 1.0) and a small
DeepSeek-V3-style layer (sigmoid affinities with a selection bias, 4 groups of which 2 are kept,
routed scaling 2.5, one shared expert, sequence-wise balance loss). Written the way a PyTorch user
writes MoE: a loop over experts with index_add_. All in float64.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_moe.py
Output: tests/reference/fixtures/moe.txt (same line format as gen_ops.py).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_ops import Writer  # noqa: E402

torch.manual_seed(2024)
torch.set_default_dtype(torch.float64)


def swiglu(x, w1, w2, w3):
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


def moe(x, p, cfg):
    """Returns (output, balance loss, expert ids) for x [B, S, d]."""
    b, s, d = x.shape
    t = b * s
    e, k = cfg["n_experts"], cfg["top_k"]
    xf = x.reshape(t, d)
    logits = F.linear(xf, p["router.weight"])
    scores = logits.softmax(-1) if cfg["gate"] == "softmax" else logits.sigmoid()
    sel = scores.detach() + p["router.expert_bias"]
    if cfg["n_groups"] > 1:
        g = sel.view(t, cfg["n_groups"], -1)
        gscore = g.max(-1).values if cfg["gate"] == "softmax" else g.topk(2, -1).values.sum(-1)
        keep = torch.zeros(t, cfg["n_groups"], dtype=torch.bool)
        keep.scatter_(1, gscore.topk(cfg["topk_groups"], -1).indices, True)
        sel = sel.masked_fill(~keep.repeat_interleave(e // cfg["n_groups"], 1), float("-inf"))
    ids = sel.topk(k, -1).indices
    w = scores.gather(1, ids)
    if cfg["normalize"]:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * cfg["scale"]
    kept = torch.ones(t, k, dtype=torch.bool)
    if cfg["capacity_factor"] > 0:
        cap = math.ceil(cfg["capacity_factor"] * t * k / e)
        used = [0] * e
        for ti in range(t):
            for j in range(k):
                ex = int(ids[ti, j])
                if used[ex] >= cap:
                    kept[ti, j] = False
                else:
                    used[ex] += 1
    out = torch.zeros_like(xf)
    for ex in range(e):
        tok, slot = torch.where((ids == ex) & kept)
        y = swiglu(xf[tok], p[f"experts.{ex}.w1"], p[f"experts.{ex}.w2"], p[f"experts.{ex}.w3"])
        out = out.index_add(0, tok, w[tok, slot, None] * y)
    if cfg["n_shared"] > 0:
        out = out + swiglu(xf, p["shared_experts.w1"], p["shared_experts.w2"], p["shared_experts.w3"])

    probs = scores if cfg["gate"] == "softmax" else scores / scores.sum(-1, keepdim=True)
    counts = torch.bincount(ids.reshape(-1), minlength=e).to(x.dtype)
    loss = torch.zeros(())
    if cfg["aux"] > 0:
        loss = loss + cfg["aux"] * e * (counts / (t * k) * probs.mean(0)).sum()
    if cfg["seq_aux"] > 0:
        per_seq = []
        for bi in range(b):
            c = torch.bincount(ids[bi * s:(bi + 1) * s].reshape(-1), minlength=e).to(x.dtype)
            per_seq.append(cfg["seq_aux"] * e * (c / (s * k) * probs[bi * s:(bi + 1) * s].mean(0)).sum())
        loss = loss + torch.stack(per_seq).mean()
    if cfg["z"] > 0:
        loss = loss + cfg["z"] * (torch.logsumexp(logits, -1) ** 2).mean()
    return out.reshape(b, s, d), loss, ids


def case(w, name, cfg, d, h, b, s):
    e = cfg["n_experts"]
    p = {"router.weight": torch.randn(e, d) * 0.5,
         "router.expert_bias": (torch.randn(e) * 0.1 if cfg["gate"] == "sigmoid" else torch.zeros(e))}
    for ex in range(e):
        p[f"experts.{ex}.w1"] = torch.randn(h, d) / math.sqrt(d)
        p[f"experts.{ex}.w2"] = torch.randn(d, h) / math.sqrt(h)
        p[f"experts.{ex}.w3"] = torch.randn(h, d) / math.sqrt(d)
    if cfg["n_shared"] > 0:
        hs = cfg["n_shared"] * h
        p["shared_experts.w1"] = torch.randn(hs, d) / math.sqrt(d)
        p["shared_experts.w2"] = torch.randn(d, hs) / math.sqrt(hs)
        p["shared_experts.w3"] = torch.randn(hs, d) / math.sqrt(d)
    for v in p.values():
        v.requires_grad_(name != "bias")
    p["router.expert_bias"].requires_grad_(False)
    x = torch.randn(b, s, d, requires_grad=True)
    out, loss, ids = moe(x, p, cfg)
    g = torch.randn_like(out)
    total = (out * g).sum() + loss
    total.backward()
    w.put(f"{name}.x", x.detach())
    w.put(f"{name}.upstream", g)
    w.put(f"{name}.output", out.detach())
    w.put(f"{name}.balance_loss", loss.detach())
    w.put(f"{name}.ids", ids)
    w.put(f"{name}.grad.x", x.grad)
    for key, v in p.items():
        w.put(f"{name}.param.{key}", v.detach())
        if v.grad is not None:
            w.put(f"{name}.grad.{key}", v.grad)


def main():
    w = Writer("moe.txt")
    mixtral = dict(n_experts=4, top_k=2, gate="softmax", n_groups=1, topk_groups=1, normalize=True, scale=1.0,
                   n_shared=0, capacity_factor=0.0, aux=0.01, seq_aux=0.0, z=0.001)
    case(w, "mixtral", mixtral, d=8, h=6, b=2, s=5)
    case(w, "mixtral_capacity", dict(mixtral, capacity_factor=1.0), d=8, h=6, b=2, s=5)
    v3 = dict(n_experts=8, top_k=2, gate="sigmoid", n_groups=4, topk_groups=2, normalize=True, scale=2.5,
              n_shared=1, capacity_factor=0.0, aux=0.0, seq_aux=0.001, z=0.0)
    case(w, "deepseek_v3", v3, d=8, h=4, b=2, s=6)
    w.save()


if __name__ == "__main__":
    main()
