#!/usr/bin/python3
"""PyTorch reference values for attention: scaled dot-product attention with causal (aligned to
the end of the keys) and key-padding masks and grouped-query heads, rotary embeddings (the
rotate-half layout of HuggingFace LLaMA/DeepSeek), the multi-head attention module (self, cross,
GQA + RoPE) and joint cross-modal attention. All in float64.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_attention.py
Output: tests/reference/fixtures/attention.txt (same line format as gen_ops.py).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_ops import Writer  # noqa: E402

torch.manual_seed(7)
torch.set_default_dtype(torch.float64)


def sdpa(q, k, v, causal=False, pad=None):
    """q [B, H, Tq, D], k/v [B, Hk, Tk, D]; pad [B, Tk] True = padding. Dead rows give zeros."""
    b, h, tq, d = q.shape
    hk, tk = k.shape[1], k.shape[2]
    k = k.repeat_interleave(h // hk, 1)
    v = v.repeat_interleave(h // hk, 1)
    s = q @ k.transpose(-2, -1) / d ** 0.5
    mask = torch.zeros(b, 1, tq, tk, dtype=torch.bool)
    if causal:
        i = torch.arange(tq).unsqueeze(1)
        j = torch.arange(tk).unsqueeze(0)
        mask = mask | (j > i + tk - tq)
    if pad is not None:
        mask = mask | pad[:, None, None, :]
    w = s.masked_fill(mask, float("-inf")).softmax(-1)
    w = w.masked_fill(mask.all(-1, keepdim=True), 0.0)
    return w @ v


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


def rope(x, offset, theta=10000.0):
    d = x.shape[-1]
    t = x.shape[-2]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(offset, offset + t, dtype=torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1)
    sin = torch.cat([ang.sin(), ang.sin()], -1)
    return x * cos + rotate_half(x) * sin


def put_all(w, prefix, **tensors):
    for k, v in tensors.items():
        w.put(f"{prefix}.{k}", v.detach() if torch.is_tensor(v) else torch.tensor(v))


def sdpa_case(w, name, b, h, hk, tq, tk, d, dv, causal, pad):
    q = torch.randn(b, h, tq, d, requires_grad=True)
    k = torch.randn(b, hk, tk, d, requires_grad=True)
    v = torch.randn(b, hk, tk, dv, requires_grad=True)
    o = sdpa(q, k, v, causal, pad)
    g = torch.randn_like(o)
    dq, dk, dv_ = torch.autograd.grad(o, (q, k, v), g)
    put_all(w, name, q=q, k=k, v=v, o=o, g=g, dq=dq, dk=dk, dv=dv_)
    if pad is not None:
        w.put(f"{name}.pad", pad)


def mha(x, ctx, p, h, hk, causal, use_rope):
    b, t, d = x.shape
    dh = d // h
    tk = ctx.shape[1]
    q = F.linear(x, p["q"]).view(b, t, h, dh).transpose(1, 2)
    k = F.linear(ctx, p["k"]).view(b, tk, hk, dh).transpose(1, 2)
    v = F.linear(ctx, p["v"]).view(b, tk, hk, dh).transpose(1, 2)
    if use_rope:
        q, k = rope(q, 0), rope(k, 0)
    o = sdpa(q, k, v, causal)
    return F.linear(o.transpose(1, 2).reshape(b, t, d), p["o"])


def mha_case(w, name, b, t, tk, d, h, hk, causal, use_rope, cross):
    dh = d // h
    p = {"q": torch.randn(d, d) / d ** 0.5, "k": torch.randn(hk * dh, d) / d ** 0.5,
         "v": torch.randn(hk * dh, d) / d ** 0.5, "o": torch.randn(d, d) / d ** 0.5}
    for v in p.values():
        v.requires_grad_(True)
    x = torch.randn(b, t, d, requires_grad=True)
    ctx = torch.randn(b, tk, d, requires_grad=True) if cross else x
    y = mha(x, ctx, p, h, hk, causal, use_rope)
    g = torch.randn_like(y)
    leaves = [x] + ([ctx] if cross else []) + [p["q"], p["k"], p["v"], p["o"]]
    grads = torch.autograd.grad(y, leaves, g)
    put_all(w, name, x=x, y=y, g=g, wq=p["q"], wk=p["k"], wv=p["v"], wo=p["o"], dx=grads[0])
    rest = grads[1:]
    if cross:
        put_all(w, name, ctx=ctx, dctx=rest[0])
        rest = rest[1:]
    put_all(w, name, dwq=rest[0], dwk=rest[1], dwv=rest[2], dwo=rest[3])


def main():
    w = Writer("attention.txt")
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    sdpa_case(w, "sdpa_gqa_causal_pad", 2, 4, 2, 5, 5, 6, 6, True, pad)
    sdpa_case(w, "sdpa_cross", 2, 2, 2, 3, 7, 4, 5, False, None)
    sdpa_case(w, "sdpa_decode", 1, 2, 1, 2, 6, 4, 4, True, None)
    # a long case that spans several 64-blocks, with a padded tail
    pad_long = torch.zeros(2, 150, dtype=torch.bool)
    pad_long[1, 140:] = True
    sdpa_case(w, "sdpa_long", 2, 2, 1, 130, 150, 8, 8, True, pad_long)

    x = torch.randn(2, 3, 5, 8, requires_grad=True)
    y = rope(x, 3)
    g = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, (x,), g)
    put_all(w, "rope", x=x, y=y, g=g, dx=dx)

    mha_case(w, "mha_gqa_rope", 2, 6, 6, 16, 4, 2, True, True, False)
    mha_case(w, "mha_cross", 2, 3, 5, 16, 4, 4, False, False, True)

    # joint cross-modal: type embeddings, concatenation, bidirectional attention, split
    d, h = 8, 2
    text = torch.randn(2, 3, d, requires_grad=True)
    image = torch.randn(2, 4, d, requires_grad=True)
    types = torch.randn(2, d, requires_grad=True)
    p = {"q": torch.randn(d, d) / d ** 0.5, "k": torch.randn(d, d) / d ** 0.5,
         "v": torch.randn(d, d) / d ** 0.5, "o": torch.randn(d, d) / d ** 0.5}
    joint = torch.cat([text + types[0], image + types[1]], 1)
    img_pad = torch.tensor([[False] * 4, [False, False, True, True]])
    full_pad = torch.cat([torch.zeros(2, 3, dtype=torch.bool), img_pad], 1)
    b, t, _ = joint.shape
    dh = d // h
    q = F.linear(joint, p["q"]).view(b, t, h, dh).transpose(1, 2)
    k = F.linear(joint, p["k"]).view(b, t, h, dh).transpose(1, 2)
    v = F.linear(joint, p["v"]).view(b, t, h, dh).transpose(1, 2)
    o = F.linear(sdpa(q, k, v, False, full_pad).transpose(1, 2).reshape(b, t, d), p["o"])
    g = torch.randn_like(o)
    dtext, dimage, dtypes = torch.autograd.grad(o, (text, image, types), g)
    put_all(w, "joint", text=text, image=image, types=types, wq=p["q"], wk=p["k"], wv=p["v"], wo=p["o"],
            out=o, g=g, dtext=dtext, dimage=dimage, dtypes=dtypes)
    w.put("joint.image_pad", img_pad)

    # more keys than one product of flash_attention takes (256): the online softmax spans three
    # key chunks; 70 queries against 600 keys, causal (aligned to the end), a padded tail
    pad_chunks = torch.zeros(1, 600, dtype=torch.bool)
    pad_chunks[0, 570:] = True
    sdpa_case(w, "sdpa_chunks", 1, 2, 1, 70, 600, 4, 4, True, pad_chunks)
    w.save()


if __name__ == "__main__":
    main()
