#!/usr/bin/python3
"""Writes the PyTorch reference values the doctest suite compares against.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_ops.py
Output: tests/reference/fixtures/*.txt (committed). Each line of a fixture file is one tensor:
    name dtype rank dim0 ... dimN value0 value1 ...
with values in row-major order, printed with 17 significant digits (exact for float64).
"""
import math
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)


class Writer:
    def __init__(self, name):
        self.path = os.path.join(OUT, name)
        self.lines = []

    def put(self, name, t):
        t = torch.as_tensor(t)
        kind = "int" if t.dtype in (torch.int64, torch.int32, torch.bool) else "float"
        vals = t.reshape(-1).tolist()
        fmt = (lambda v: str(int(v))) if kind == "int" else (lambda v: repr(float(v)))
        self.lines.append(" ".join([name, kind, str(t.dim())] + [str(d) for d in t.shape] + [fmt(v) for v in vals]))

    def save(self):
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def elementwise():
    w = Writer("elementwise.txt")
    x = torch.linspace(-3.0, 3.0, 25)
    pos = torch.linspace(0.05, 4.0, 25)
    w.put("x", x)
    w.put("pos", pos)
    unary = {
        "neg": (torch.neg, x), "exp": (torch.exp, x), "log": (torch.log, pos), "log1p": (torch.log1p, pos),
        "expm1": (torch.expm1, x), "sqrt": (torch.sqrt, pos), "rsqrt": (torch.rsqrt, pos), "abs": (torch.abs, x),
        "tanh": (torch.tanh, x), "sigmoid": (torch.sigmoid, x), "relu": (torch.relu, x), "silu": (F.silu, x),
        "gelu": (F.gelu, x), "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), x),
        "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), x), "softplus": (lambda t: F.softplus(t, beta=2.0, threshold=3.0), x),
        "clamp": (lambda t: torch.clamp(t, -1.0, 2.0), x), "square": (torch.square, x), "reciprocal": (torch.reciprocal, pos),
        "sign": (torch.sign, x),
    }
    for name, (f, inp) in unary.items():
        a = inp.clone().requires_grad_(True)
        y = f(a)
        (g,) = torch.autograd.grad(y.sum(), a)
        w.put(name + ".y", y.detach())
        w.put(name + ".dx", g)
    b = torch.linspace(0.5, 2.5, 25)
    for name, f in {"pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum, "div": torch.div, "mul": torch.mul}.items():
        aa = pos.clone().requires_grad_(True)
        bb = b.clone().requires_grad_(True)
        y = f(aa, bb)
        ga, gb = torch.autograd.grad(y.sum(), (aa, bb))
        w.put(name + ".a", aa.detach())
        w.put(name + ".b", bb.detach())
        w.put(name + ".y", y.detach())
        w.put(name + ".da", ga)
        w.put(name + ".db", gb)
    # broadcasting: [4, 1, 3] op [5, 1] -> [4, 5, 3]
    p = torch.randn(4, 1, 3)
    q = torch.randn(5, 1)
    w.put("bcast.p", p)
    w.put("bcast.q", q)
    w.put("bcast.y", torch.relu(p * q + 0.5) - torch.where(p > q, p, q))
    w.put("arange", torch.arange(-2.0, 3.0, 0.7))
    w.put("linspace", torch.linspace(-1.0, 2.0, 7))
    w.save()


def ops():
    w = Writer("ops.txt")
    a = torch.randn(5, 7)
    b = torch.randn(7, 3)
    w.put("mm.a", a); w.put("mm.b", b); w.put("mm.c", a @ b)
    w.put("mm.atb", a.t().contiguous() @ a)  # A^T A through a transposed view
    ba = torch.randn(2, 1, 4, 6)
    bb = torch.randn(3, 6, 5)
    w.put("bmm.a", ba); w.put("bmm.b", bb); w.put("bmm.c", torch.matmul(ba, bb))
    v = torch.randn(7)
    w.put("mv.v", v); w.put("mv.av", a @ v); w.put("mv.vb", v @ b); w.put("mv.vv", v @ v)
    x = torch.randn(2, 3, 7)
    lw = torch.randn(4, 7)
    lb = torch.randn(4)
    w.put("linear.x", x); w.put("linear.w", lw); w.put("linear.b", lb); w.put("linear.y", F.linear(x, lw, lb))

    r = torch.randn(3, 4, 5)
    w.put("red.x", r)
    for dims, keep in [((), False), ((0,), False), ((1,), True), ((2,), False), ((0, 2), False), ((-1, 0), True)]:
        tag = "all" if not dims else "_".join(str(d) for d in dims)
        tag += "_k" if keep else ""
        kw = dict(dim=dims, keepdim=keep) if dims else {}
        w.put(f"sum.{tag}", torch.sum(r, **kw))
        w.put(f"mean.{tag}", torch.mean(r, **kw))
        w.put(f"var.{tag}", torch.var(r, **kw))
        w.put(f"lse.{tag}", torch.logsumexp(r, dim=dims if dims else (0, 1, 2), keepdim=keep))
        w.put(f"amax.{tag}", torch.amax(r, **kw) if dims else torch.max(r))
        w.put(f"amin.{tag}", torch.amin(r, **kw) if dims else torch.min(r))
    for d in (0, 1, 2):
        w.put(f"argmax.{d}", torch.argmax(r, dim=d))
        w.put(f"argmin.{d}", torch.argmin(r, dim=d))
        w.put(f"softmax.{d}", torch.softmax(r, dim=d))
        w.put(f"log_softmax.{d}", torch.log_softmax(r, dim=d))
    w.put("argmax.all", torch.argmax(r))

    ties = torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.5, 0.5, -1.0, 0.5, 2.0, -1.0]])
    w.put("ties.x", ties)
    tv, ti = torch.topk(ties, 4, dim=1)
    w.put("topk.v", tv); w.put("topk.i", ti)
    sv, si = torch.sort(ties, dim=1, stable=True)
    w.put("sort.v", sv); w.put("sort.i", si)
    dv, di = torch.sort(ties, dim=1, descending=True, stable=True)
    w.put("sortd.v", dv); w.put("sortd.i", di)
    tk0v, tk0i = torch.topk(r, 2, dim=0, largest=False)
    w.put("topk0.v", tk0v); w.put("topk0.i", tk0i)

    g = torch.randn(4, 5)
    gi = torch.tensor([[0, 4, 4], [1, 0, 2], [3, 3, 3]])
    w.put("gather.x", g); w.put("gather.i", gi); w.put("gather.y1", torch.gather(g, 1, gi))
    gi0 = torch.tensor([[3, 0, 1, 1, 2], [0, 0, 3, 2, 1]])
    w.put("gather.i0", gi0); w.put("gather.y0", torch.gather(g, 0, gi0))
    src = torch.randn(2, 5)
    w.put("scatter.src", src)
    si0 = torch.tensor([[1, 0, 3, 2, 0], [2, 1, 0, 3, 1]])
    w.put("scatter.i", si0)
    w.put("scatter.y", torch.scatter(g, 0, si0, src))
    dup = torch.tensor([[1, 1, 1, 2, 0], [1, 1, 0, 2, 0]])
    w.put("scatter_add.i", dup)
    w.put("scatter_add.y", torch.scatter_add(g, 0, dup, src))
    isel = torch.tensor([4, 0, 0, 2])
    w.put("isel.i", isel); w.put("isel.y1", torch.index_select(g, 1, isel))
    w.put("isel.y0", torch.index_select(g, 0, torch.tensor([3, 3, 1])))
    iadd = torch.tensor([0, 2, 0])
    s3 = torch.randn(3, 5)
    w.put("iadd.i", iadd); w.put("iadd.src", s3); w.put("iadd.y", torch.index_add(g, 0, iadd, s3, alpha=0.5))
    emb_ids = torch.tensor([[1, 3], [0, 1], [3, 3]])
    w.put("emb.ids", emb_ids); w.put("emb.y", F.embedding(emb_ids, g))
    w.put("onehot.y", F.one_hot(torch.tensor([2, 0, 3]), 5))
    mask = torch.tensor([True, False, False, True, False])
    w.put("mask.m", mask.long()); w.put("mask.y", g.masked_fill(mask, -7.5))
    w.save()


def printing():
    """The exact strings torch prints, for the printing tests (one tensor per block)."""
    torch.set_default_dtype(torch.float32)
    cases = [
        ("int_floats", torch.tensor([[1.0, 2.0], [3.0, 4.0]])),
        ("fixed", torch.tensor([0.1, -2.25, 3.5])),
        ("sci", torch.tensor([1e-5, 1.0, 123456.0])),
        ("ints", torch.tensor([[1, -20, 3], [4, 5, 600]])),
        ("bools", torch.tensor([True, False])),
        ("scalar", torch.tensor(3.5)),
        ("cube", torch.arange(8.0).reshape(2, 2, 2)),
        ("double", torch.tensor([0.5, 1.5], dtype=torch.float64)),
        ("empty", torch.zeros(0, 3)),
        ("nonfinite", torch.tensor([float("nan"), float("inf"), -1.5])),
        ("summary1d", torch.arange(2000.0)),
        ("summary2d", torch.arange(2000.0).reshape(40, 50)),
        ("wrapped", torch.arange(100.0) / 3),
    ]
    with open(os.path.join(OUT, "printing.txt"), "w") as f:
        for name, t in cases:
            s = str(t).replace("torch.", "")
            f.write(f"@{name}\n{s}\n")
    torch.set_default_dtype(torch.float64)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    elementwise()
    ops()
    printing()
    print("fixtures written to", OUT)
