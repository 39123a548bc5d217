#!/usr/bin/python3
"""Random cases of dsm's tensor operations on strided views, with PyTorch's values and gradients.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_fuzz.py
Output: tests/reference/fixtures/fuzz.txt (committed), read by tests/ops/test_fuzz.cpp.

Each case draws an operation, its parameters and the shapes of its inputs, then builds every input
as a view of a larger "base" tensor: a chain of permute, transpose, slice (with steps), narrow,
select, unsqueeze, expand and reshape drawn at random, so that the operation sees the strides,
offsets, zero strides and broadcasts a real program hands it. PyTorch applies the same chain, runs
the operation in float64 and differentiates sum(out * w) with respect to every base.

Lines of the file (values are float64 printed exactly, integers as integers):
    case ID DTYPE OP key=value ...     # DTYPE float32 or float64; the parameters of OP
    in ID NAME GRAD VIEWS              # GRAD 1 when the case checks NAME's gradient; VIEWS the
                                       # chain, ops joined by ',', arguments by ':' ('-': none)
    t ID NAME KIND RANK DIMS... VALUES...  # NAME.base for an input; out (or out0, out1), w,
                                           # and NAME.grad for the gradients
"""
import math
import os
import random

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "fuzz.txt")
CASES = 480
rng = random.Random(20261201)
torch.manual_seed(20261201)


def numel(shape):
    return math.prod(shape) if shape else 1


# ---- view chains: built backwards from the shape the operation needs to the base's shape ----

def build_view_chain(target, allow_expand, max_base=160, allow_reshape=True):
    """Returns (base_shape, ops): base.ops() has shape `target`."""
    shape = list(target)
    ops = []  # forward order, base first
    steps = rng.choice([0, 1, 1, 2, 2, 3])
    for _ in range(steps):
        kinds = ["permute", "transpose", "slice", "narrow", "select"] + (["reshape"] if allow_reshape else [])
        if any(s == 1 for s in shape):
            kinds.append("unsqueeze")
        kind = rng.choice(kinds)
        r = len(shape)
        if kind == "permute" and r >= 2:
            q = list(range(r))
            rng.shuffle(q)
            base = [shape[q[i]] for i in range(r)]
            inv = sorted(range(r), key=lambda i: q[i])  # argsort(q)
            op = ("permute", inv)
        elif kind == "transpose" and r >= 2:
            d0, d1 = rng.sample(range(r), 2)
            base = list(shape)
            base[d0], base[d1] = base[d1], base[d0]
            op = ("transpose", [d0, d1])
        elif kind == "slice" and r >= 1:
            d = rng.randrange(r)
            step = rng.choice([1, 2, 3])
            start = rng.randrange(3)
            span = (shape[d] - 1) * step + 1 if shape[d] > 0 else 0
            extra = rng.randrange(3)
            base = list(shape)
            base[d] = start + span + extra
            op = ("slice", [d, start, start + span, step])
        elif kind == "narrow" and r >= 1:
            d = rng.randrange(r)
            start = rng.randrange(3)
            base = list(shape)
            base[d] = start + shape[d] + rng.randrange(3)
            op = ("narrow", [d, start, shape[d]])
        elif kind == "select" and r < 4:
            d = rng.randrange(r + 1)
            m = rng.choice([1, 2, 3])
            base = shape[:d] + [m] + shape[d:]
            op = ("select", [d, rng.randrange(m)])
        elif kind == "unsqueeze":
            d = rng.choice([i for i, s in enumerate(shape) if s == 1])
            base = shape[:d] + shape[d + 1:]
            op = ("unsqueeze", [d])
        elif kind == "reshape" and r >= 1 and numel(shape) > 0:
            # Merge two neighbours or split one: the forward reshape undoes it (a view or a copy).
            base = list(shape)
            if r >= 2 and rng.random() < 0.5:
                d = rng.randrange(r - 1)
                base[d:d + 2] = [base[d] * base[d + 1]]
            else:
                d = rng.randrange(r)
                divs = [k for k in range(2, base[d]) if base[d] % k == 0]
                if not divs or r >= 4:
                    continue
                k = rng.choice(divs)
                base[d:d + 1] = [k, base[d] // k]
            op = ("reshape", list(shape))
        else:
            continue
        if numel(base) > max_base:
            continue
        ops.insert(0, op)
        shape = base
    if allow_expand and numel(target) > 0 and rng.random() < 0.3:
        # Broadcast some dimensions: the chain so far yields a tensor with 1 there.
        r = len(target)
        dims = [d for d in range(r) if rng.random() < 0.5]
        if dims:
            smaller = [1 if d in dims else s for d, s in enumerate(target)]
            base, inner = build_view_chain(smaller, False, max_base)
            return base, inner + [("expand", list(target))]
    return shape, ops


def apply_torch(x, ops):
    for kind, a in ops:
        if kind == "permute":
            x = x.permute(*a)
        elif kind == "transpose":
            x = x.transpose(a[0], a[1])
        elif kind == "slice":
            idx = [slice(None)] * x.dim()
            idx[a[0]] = slice(a[1], a[2], a[3])
            x = x[tuple(idx)]
        elif kind == "narrow":
            x = x.narrow(a[0], a[1], a[2])
        elif kind == "select":
            x = x.select(a[0], a[1])
        elif kind == "unsqueeze":
            x = x.unsqueeze(a[0])
        elif kind == "reshape":
            x = x.reshape(a)
        elif kind == "expand":
            x = x.expand(*a)
    return x


def chain_text(ops):
    if not ops:
        return "-"
    return ",".join(":".join([k] + [str(v) for v in a]) for k, a in ops)


# ---- values ----

def distinct_values(n, lo, hi):
    """n distinct values on a grid of 1/64 steps in [lo, hi] (exact in float32; no ties)."""
    grid = int((hi - lo) * 64)
    picks = rng.sample(range(grid + 1), n) if n <= grid + 1 else [rng.randrange(grid + 1) for _ in range(n)]
    return [lo + p / 64.0 for p in picks]


def random_shape(rank, lo=1, hi=5):
    return [rng.randint(lo, hi) for _ in range(rank)]


class Case:
    def __init__(self, cid, dtype, op, params):
        self.cid, self.dtype, self.op, self.params = cid, dtype, op, params
        self.inputs = []  # (name, base tensor, ops, grad)
        self.tensors = []

    def input(self, name, shape, grad=True, lo=-2.0, hi=2.0, allow_expand=True, values=None):
        base_shape, ops = build_view_chain(shape, allow_expand)
        if values is None:
            values = distinct_values(numel(base_shape), lo, hi)
        base = torch.tensor(values, dtype=torch.float64).reshape(base_shape)
        base.requires_grad_(grad)
        self.inputs.append((name, base, ops, grad))
        return apply_torch(base, ops)

    def int_input(self, name, values, shape):
        base = torch.tensor(values, dtype=torch.int64).reshape(shape)
        self.inputs.append((name, base, [], False))
        return base

    def finish(self, outs):
        """outs: float outputs to differentiate, or (name, tensor) pairs for integer outputs."""
        ws = []
        loss = 0
        for name, out in outs:
            self.put(name, out.detach())
            if out.dtype == torch.float64 and out.requires_grad:
                w = torch.tensor(distinct_values(out.numel(), -1.0, 1.0) if out.numel() else [], dtype=torch.float64).reshape(out.shape)
                self.put("w" + name[3:], w)
                loss = loss + (out * w).sum()
                ws.append(w)
        if ws:
            loss.backward()
        for name, base, _, grad in self.inputs:
            if grad:
                g = base.grad if base.grad is not None else torch.zeros_like(base)
                self.put(name + ".grad", g)

    def put(self, name, t):
        self.tensors.append((name, t))

    def lines(self):
        head = " ".join(["case", str(self.cid), self.dtype, self.op] + [f"{k}={v}" for k, v in self.params.items()])
        out = [head]
        for name, base, ops, grad in self.inputs:
            out.append(f"in {self.cid} {name} {int(grad)} {chain_text(ops)}")
        for name, base, _, _ in self.inputs:
            out.append(tensor_line(self.cid, name + ".base", base.detach()))
        for name, t in self.tensors:
            out.append(tensor_line(self.cid, name, t))
        return out


def tensor_line(cid, name, t):
    kind = "int" if t.dtype in (torch.int64, torch.bool) else "float"
    vals = t.reshape(-1).tolist()
    fmt = (lambda v: str(int(v))) if kind == "int" else (lambda v: repr(float(v)))
    return " ".join(["t", str(cid), name, kind, str(t.dim())] + [str(d) for d in t.shape] + [fmt(v) for v in vals])


def dims_text(dims):
    return ":".join(str(d) for d in dims) if dims else "all"


# ---- operations ----

UNARY = {
    "neg": (torch.neg, -2, 2), "exp": (torch.exp, -2, 2), "log": (torch.log, 0.1, 3),
    "log1p": (torch.log1p, -0.8, 2), "expm1": (torch.expm1, -2, 2), "sqrt": (torch.sqrt, 0.1, 3),
    "rsqrt": (torch.rsqrt, 0.1, 3), "abs": (torch.abs, -2, 2), "square": (torch.square, -2, 2),
    "reciprocal": (torch.reciprocal, 0.25, 3), "tanh": (torch.tanh, -3, 3),
    "sigmoid": (torch.sigmoid, -4, 4), "relu": (torch.relu, -2, 2), "silu": (F.silu, -3, 3),
    "gelu": (F.gelu, -3, 3),
}
BINARY = {
    "add": (torch.add, -2, 2), "sub": (torch.sub, -2, 2), "mul": (torch.mul, -2, 2),
    "div": (torch.div, 0.25, 3), "maximum": (torch.maximum, -2, 2), "minimum": (torch.minimum, -2, 2),
    "pow": (torch.pow, 0.25, 2),
}


def broadcast_pair(rank):
    out = random_shape(rank)
    a = list(out)
    b = list(out)
    for d in range(rank):
        r = rng.random()
        if r < 0.2:
            a[d] = 1
        elif r < 0.4:
            b[d] = 1
    b = b[rng.randrange(rank + 1):] if rng.random() < 0.3 else b  # fewer leading dimensions
    return a, b


def make_case(cid):
    dtype = "float64" if rng.random() < 0.6 else "float32"
    kind = rng.choices(["unary", "binary", "fused", "reduce", "arg", "softmax", "matmul", "linear", "join",
                        "index", "sort", "inplace"], [12, 12, 6, 12, 4, 6, 10, 4, 6, 10, 5, 6])[0]
    rank = rng.randint(1, 4)
    if kind == "unary":
        name = rng.choice(sorted(UNARY))
        f, lo, hi = UNARY[name]
        c = Case(cid, dtype, "unary", {"fn": name})
        a = c.input("a", random_shape(rank), lo=lo, hi=hi)
        c.finish([("out", f(a))])
    elif kind == "binary":
        name = rng.choice(sorted(BINARY))
        f, lo, hi = BINARY[name]
        c = Case(cid, dtype, "binary", {"fn": name})
        sa, sb = broadcast_pair(rank)
        a = c.input("a", sa, lo=lo, hi=hi)
        b = c.input("b", sb, lo=(-1.5 if name == "pow" else lo), hi=hi)
        c.finish([("out", f(a, b))])
    elif kind == "fused":
        c = Case(cid, dtype, "fused", {})
        sa, sb = broadcast_pair(rank)
        a = c.input("a", sa)
        b = c.input("b", sb)
        cc = c.input("c", list(torch.broadcast_shapes(torch.Size(sa), torch.Size(sb))))
        # relu(a * b + c) - 0.5 * tanh(a) * sigmoid(c) + where(a > b, a, c)
        out = torch.relu(a * b + cc) - 0.5 * torch.tanh(a) * torch.sigmoid(cc) + torch.where(a > b, a, cc)
        c.finish([("out", out)])
    elif kind in ("reduce", "arg"):
        shape = random_shape(rank)
        if kind == "reduce":
            fn = rng.choice(["sum", "mean", "max", "min", "logsumexp", "var", "std"])
        else:
            fn = rng.choice(["argmax", "argmin"])
        nd = rng.randint(0, rank) if fn in ("sum", "mean", "max", "min", "var", "std", "logsumexp") else 1
        if fn in ("argmax", "argmin"):
            nd = rng.choice([0, 1])
        dims = sorted(rng.sample(range(rank), nd))
        signed = [d - rank if rng.random() < 0.3 else d for d in dims]
        keep = rng.random() < 0.5
        corr = rng.choice([0, 1]) if fn in ("var", "std") else 1
        if fn in ("var", "std") and (numel([shape[d] for d in dims]) if dims else numel(shape)) <= corr:
            corr = 0  # one element with the unbiased correction divides by zero
        c = Case(cid, dtype, kind, {"fn": fn, "dims": dims_text(signed), "keepdim": int(keep), "correction": corr})
        a = c.input("a", shape, grad=(kind == "reduce"))
        ad = dims if dims else list(range(rank))
        if fn == "sum":
            out = a.sum(ad, keepdim=keep) if dims else (a.sum() if not keep else a.sum(ad, keepdim=True))
        elif fn == "mean":
            out = a.mean(ad, keepdim=keep)
        elif fn == "max":
            out = a.amax(ad, keepdim=keep)
        elif fn == "min":
            out = a.amin(ad, keepdim=keep)
        elif fn == "logsumexp":
            out = torch.logsumexp(a, ad, keepdim=keep)
        elif fn == "var":
            out = torch.var(a, ad, correction=corr, keepdim=keep)
        elif fn == "std":
            out = torch.std(a, ad, correction=corr, keepdim=keep)
        elif fn in ("argmax", "argmin"):
            g = torch.argmax if fn == "argmax" else torch.argmin
            out = g(a, dims[0], keepdim=keep) if dims else g(a)
            if not dims and keep:
                out = out.reshape([1] * rank)
        c.finish([("out", out)])
    elif kind == "softmax":
        fn = rng.choice(["softmax", "log_softmax"])
        shape = random_shape(rank)
        d = rng.randrange(rank) - (rank if rng.random() < 0.5 else 0)
        c = Case(cid, dtype, "softmax", {"fn": fn, "dim": d})
        a = c.input("a", shape, lo=-3, hi=3)
        c.finish([("out", (torch.softmax if fn == "softmax" else torch.log_softmax)(a, d))])
    elif kind == "matmul":
        form = rng.choice(["mm", "mm", "bmm", "batched", "mv", "vm", "vv"])
        m, k, n = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
        if form == "mm":
            sa, sb = [m, k], [k, n]
        elif form == "bmm":
            bsz = rng.randint(1, 3)
            sa, sb = [bsz, m, k], [bsz, k, n]
        elif form == "batched":  # broadcast batch dimensions
            sa, sb = [rng.choice([1, 2]), rng.randint(1, 3), m, k], [rng.randint(1, 3), k, n]
            if sa[1] != sb[0] and sa[1] != 1 and sb[0] != 1:
                sb[0] = sa[1]
        elif form == "mv":
            sa, sb = [m, k], [k]
        elif form == "vm":
            sa, sb = [k], [k, n]
        else:
            sa, sb = [k], [k]
        c = Case(cid, dtype, "matmul", {"form": "bmm" if form == "bmm" else "matmul"})
        a = c.input("a", sa)
        b = c.input("b", sb)
        c.finish([("out", torch.matmul(a, b))])
    elif kind == "linear":
        m, k, n = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
        lead = random_shape(rng.randint(0, 2), 1, 3)
        bias = rng.random() < 0.6
        c = Case(cid, dtype, "linear", {"bias": int(bias)})
        x = c.input("x", lead + [m, k] if lead else [m, k])
        w = c.input("w", [n, k])
        b = c.input("b", [n]) if bias else None
        c.finish([("out", F.linear(x, w, b))])
    elif kind == "join":
        fn = rng.choice(["cat", "stack"])
        shape = random_shape(rank, 1, 4)
        count = rng.randint(1, 3)
        d = rng.randrange(rank + (1 if fn == "stack" else 0))
        c = Case(cid, dtype, fn, {"dim": d, "count": count})
        xs = []
        for i in range(count):
            s = list(shape)
            if fn == "cat":
                s[d] = rng.randint(0, 3)
            xs.append(c.input(f"x{i}", s))
        out = torch.cat(xs, d) if fn == "cat" else torch.stack(xs, d)
        c.finish([("out", out)])
    elif kind == "index":
        fn = rng.choice(["index_select", "gather", "scatter_add", "index_add", "masked_fill", "embedding"])
        shape = random_shape(rank, 1, 5)
        d = rng.randrange(rank)
        c = Case(cid, dtype, fn, {"dim": d})
        x = c.input("x", shape)
        if fn == "index_select":
            n = rng.randint(0, 6)
            idx = c.int_input("i", [rng.randrange(shape[d]) for _ in range(n)], [n])
            out = torch.index_select(x, d, idx)
        elif fn == "gather":
            ishape = [rng.randint(1, s) for s in shape]
            ishape[d] = rng.randint(1, 6)
            idx = c.int_input("i", [rng.randrange(shape[d]) for _ in range(numel(ishape))], ishape)
            out = torch.gather(x, d, idx)
        elif fn == "scatter_add":
            ishape = [rng.randint(1, s) for s in shape]
            ishape[d] = rng.randint(1, 6)
            idx = c.int_input("i", [rng.randrange(shape[d]) for _ in range(numel(ishape))], ishape)
            src = c.input("src", ishape)
            out = torch.scatter_add(x, d, idx, src)
        elif fn == "index_add":
            n = rng.randint(1, 6)
            idx = c.int_input("i", [rng.randrange(shape[d]) for _ in range(n)], [n])
            sshape = list(shape)
            sshape[d] = n
            src = c.input("src", sshape)
            alpha = rng.choice([1.0, 0.5, -2.0])
            c.params["alpha"] = alpha
            out = torch.index_add(x, d, idx, src, alpha=alpha)
        elif fn == "masked_fill":
            mshape = [s if rng.random() < 0.7 else 1 for s in shape]
            mvals = [rng.random() < 0.4 for _ in range(numel(mshape))]
            mask = torch.tensor(mvals, dtype=torch.bool).reshape(mshape)
            c.inputs.append(("m", mask, [], False))
            value = rng.choice([-7.5, 0.0, 3.25])
            c.params["value"] = value
            out = x.masked_fill(mask, value)
        else:  # embedding: a [rows, width] table, any-shaped ids
            c.op = "embedding"
            ids_shape = random_shape(rng.randint(1, 2), 1, 4)
            rows = numel(shape[:1])
            idx = c.int_input("i", [rng.randrange(rows) for _ in range(numel(ids_shape))], ids_shape)
            xt = x if x.dim() == 2 else x.reshape(shape[0], -1)
            c.params["table"] = "2d" if x.dim() == 2 else "reshape"
            out = F.embedding(idx, xt)
        c.finish([("out", out)])
    elif kind == "sort":
        fn = rng.choice(["sort", "argsort", "topk"])
        shape = random_shape(rank, 1, 6)
        d = rng.randrange(rank) - (rank if rng.random() < 0.3 else 0)
        flag = rng.random() < 0.5
        c = Case(cid, dtype, fn, {"dim": d, "flag": int(flag)})
        x = c.input("x", shape, grad=(fn != "argsort"), allow_expand=False)
        if fn == "sort":
            v, i = torch.sort(x, d, descending=flag)
            c.finish([("out0", v), ("out1", i)])
        elif fn == "argsort":
            c.finish([("out", torch.argsort(x, d, descending=flag))])
        else:
            k = rng.randint(0, shape[d])
            c.params["k"] = k
            v, i = torch.topk(x, k, d, largest=flag)
            c.finish([("out0", v), ("out1", i)])
    else:  # in-place writes through a view of a target
        fn = rng.choice(["copy_", "fill_", "masked_fill_", "index_add_", "scatter_add_", "assign", "add_assign"])
        shape = random_shape(rank, 1, 5)
        c = Case(cid, dtype, "inplace", {"fn": fn})
        # The target: a view (no expand: writes through zero strides are undefined) of a base whose
        # other elements must stay untouched.
        base_shape, ops = build_view_chain(shape, False, allow_reshape=False)  # a reshape may copy
        base = torch.tensor(distinct_values(numel(base_shape), -2, 2), dtype=torch.float64).reshape(base_shape)
        c.inputs.append(("y", base.clone(), ops, False))
        view = apply_torch(base, ops)
        src_shape = [s if rng.random() < 0.8 else 1 for s in shape]
        if fn == "copy_":
            s = c.input("s", src_shape, grad=False)
            view.copy_(s)
        elif fn == "fill_":
            c.params["value"] = 1.5
            view.fill_(1.5)
        elif fn == "masked_fill_":
            mask = torch.tensor([rng.random() < 0.5 for _ in range(numel(src_shape))], dtype=torch.bool).reshape(src_shape)
            c.inputs.append(("m", mask, [], False))
            c.params["value"] = -3.0
            view.masked_fill_(mask, -3.0)
        elif fn == "index_add_":
            d = rng.randrange(rank)
            n = rng.randint(1, 5)
            idx = c.int_input("i", [rng.randrange(shape[d]) for _ in range(n)], [n])
            sshape = list(shape)
            sshape[d] = n
            s = c.input("s", sshape, grad=False)
            c.params["dim"] = d
            view.index_add_(d, idx, s)
        elif fn == "scatter_add_":
            d = rng.randrange(rank)
            ishape = [rng.randint(1, s) for s in shape]
            idx = c.int_input("i", [rng.randrange(shape[d]) for _ in range(numel(ishape))], ishape)
            s = c.input("s", ishape, grad=False)
            c.params["dim"] = d
            view.scatter_add_(d, idx, s)
        elif fn == "assign":  # view = a * b + 1
            a = c.input("a", src_shape, grad=False)
            b = c.input("b", [shape[-1]], grad=False)
            view.copy_(a * b + 1)
        else:  # view += a * 2
            a = c.input("a", src_shape, grad=False)
            view.add_(a * 2)
        c.put("out", base)
    return c


def main():
    lines = []
    for cid in range(CASES):
        lines.extend(make_case(cid).lines())
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{CASES} cases, {os.path.getsize(OUT)} bytes -> {OUT}")


if __name__ == "__main__":
    main()
