#!/usr/bin/python3
"""PyTorch reference values for the nn and optim layers: layer outputs and gradients, losses,
and optimizer trajectories. All in float64.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_nn.py
Output: tests/reference/fixtures/nn.txt and optim.txt (same line format as gen_ops.py).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_ops import Writer  # noqa: E402

torch.manual_seed(4321)
torch.set_default_dtype(torch.float64)


def grads(out, upstream, *leaves):
    return torch.autograd.grad(out, leaves, upstream)


def layers(w):
    # Linear on a 3-D input
    x = torch.randn(2, 3, 4, requires_grad=True)
    wt = torch.randn(5, 4, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    y = F.linear(x, wt, b)
    g = torch.randn_like(y)
    dx, dw, db = grads(y, g, x, wt, b)
    for k, v in dict(x=x, w=wt, b=b, y=y, g=g, dx=dx, dw=dw, db=db).items():
        w.put("linear." + k, v.detach())

    # LayerNorm and RMSNorm over the last dim
    x = torch.randn(2, 3, 6, requires_grad=True)
    lw = torch.randn(6, requires_grad=True)
    lb = torch.randn(6, requires_grad=True)
    y = F.layer_norm(x, (6,), lw, lb, eps=1e-5)
    g = torch.randn_like(y)
    dx, dw, db = grads(y, g, x, lw, lb)
    for k, v in dict(x=x, w=lw, b=lb, y=y, g=g, dx=dx, dw=dw, db=db).items():
        w.put("layer_norm." + k, v.detach())
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * lw  # RMSNorm (LLaMA/DeepSeek)
    dx, dw = grads(y, g, x, lw)
    for k, v in dict(y=y, dx=dx, dw=dw).items():
        w.put("rms_norm." + k, v.detach())

    # SwiGLU MLP: fc2(silu(a) * b) with [a, b] = fc1(x)
    x = torch.randn(3, 4, requires_grad=True)
    w1 = torch.randn(12, 4, requires_grad=True)
    w2 = torch.randn(4, 6, requires_grad=True)
    h = F.linear(x, w1)
    a, bb = h.chunk(2, -1)
    y = F.linear(F.silu(a) * bb, w2)
    g = torch.randn_like(y)
    dx, dw1, dw2 = grads(y, g, x, w1, w2)
    for k, v in dict(x=x, w1=w1, w2=w2, y=y, g=g, dx=dx, dw1=dw1, dw2=dw2).items():
        w.put("mlp." + k, v.detach())


def losses(w):
    logits = torch.randn(6, 5, requires_grad=True)
    target = torch.tensor([1, 0, 4, -100, 2, 4])
    w.put("ce.logits", logits.detach())
    w.put("ce.target", target)
    for name, kw in {"mean": {}, "sum": dict(reduction="sum"), "smooth": dict(label_smoothing=0.1)}.items():
        loss = F.cross_entropy(logits, target, **kw)
        (d,) = torch.autograd.grad(loss, logits)
        w.put("ce." + name + ".loss", loss.detach())
        w.put("ce." + name + ".dlogits", d)
    loss = F.cross_entropy(logits, target, reduction="none", label_smoothing=0.2)
    g = torch.randn(6)
    (d,) = torch.autograd.grad(loss, logits, g)
    w.put("ce.none.loss", loss.detach())
    w.put("ce.none.g", g)
    w.put("ce.none.dlogits", d)
    logp = F.log_softmax(logits, 1)
    loss = F.nll_loss(logp, target)
    (d,) = torch.autograd.grad(loss, logits)
    w.put("nll.loss", loss.detach())
    w.put("nll.dlogits", d)

    a = torch.randn(4, 3, requires_grad=True)
    t = torch.rand(4, 3)
    w.put("bce.x", a.detach())
    w.put("bce.t", t)
    loss = F.binary_cross_entropy_with_logits(a, t)
    (d,) = torch.autograd.grad(loss, a)
    w.put("bce.loss", loss.detach())
    w.put("bce.dx", d)
    loss = F.mse_loss(a, t, reduction="sum")
    (d,) = torch.autograd.grad(loss, a)
    w.put("mse.loss", loss.detach())
    w.put("mse.dx", d)

    s = torch.randn(4, 6, requires_grad=True)
    te = torch.randn(4, 6, requires_grad=True)
    T = 2.0
    loss = T * T * F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(te / T, 1), reduction="batchmean", log_target=True)
    ds, dt = torch.autograd.grad(loss, (s, te))
    for k, v in dict(s=s, t=te, loss=loss, ds=ds, dt=dt).items():
        w.put("kd." + k, v.detach())


def optimizers(w):
    """20 steps of each optimizer on loss(p) = sum((p * a - c)^2) + sum(tanh(p))."""
    p0 = torch.randn(3, 4)
    a = torch.randn(3, 4)
    c = torch.randn(3, 4)
    w.put("p0", p0)
    w.put("a", a)
    w.put("c", c)
    configs = {
        "sgd": lambda p: torch.optim.SGD([p], lr=0.05),
        "sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        "adam": lambda p: torch.optim.Adam([p], lr=0.01, weight_decay=0.01),
        "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
        "adamw_amsgrad": lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1, amsgrad=True),
    }
    for name, make in configs.items():
        p = p0.clone().requires_grad_(True)
        opt = make(p)
        traj = []
        for _ in range(20):
            opt.zero_grad()
            loss = ((p * a - c) ** 2).sum() + torch.tanh(p).sum()
            loss.backward()
            opt.step()
            traj.append(p.detach().clone())
        w.put(name, torch.stack(traj))
    # clip_grad_norm_: the total norm before clipping and the clipped gradients
    g1, g2 = torch.randn(3, 4), torch.randn(5)
    p1, p2 = torch.zeros(3, 4, requires_grad=True), torch.zeros(5, requires_grad=True)
    p1.grad, p2.grad = g1.clone(), g2.clone()
    norm = torch.nn.utils.clip_grad_norm_([p1, p2], 1.5)
    for k, v in dict(g1=g1, g2=g2, norm=norm, c1=p1.grad, c2=p2.grad).items():
        w.put("clip." + k, v)


if __name__ == "__main__":
    w = Writer("nn.txt")
    layers(w)
    losses(w)
    w.save()
    w = Writer("optim.txt")
    optimizers(w)
    w.save()
