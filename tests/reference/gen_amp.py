#!/usr/bin/python3 -O
"""PyTorch reference sequences for the dynamic loss scaler: torch.cuda.amp.GradScaler driving SGD
through scripted runs of finite and non-finite gradients.

Run with Debian's python3-torch:  /usr/bin/python3 -O tests/reference/gen_amp.py
Output: tests/reference/fixtures/grad_scaler.txt

This machine has no CUDA, and torch 1.13's GradScaler only runs on CUDA tensors: its Python class
(the stage machine of unscale_/step/update, step skipping, lazy init, state_dict) is used as it
is, with its CUDA-only asserts compiled out by -O, and the two CUDA kernels it calls replaced by
CPU functions that do what aten/src/ATen/native/cuda/AmpKernels.cu does:
  _amp_foreach_non_finite_check_and_unscale_: found_inf = 1 if any gradient element is inf/NaN;
      every gradient is multiplied by inv_scale.
  _amp_update_scale_: on found_inf, scale = float(scale * backoff) and tracker = 0; else tracker
      + 1, and when that reaches growth_interval, scale = float(scale * growth) if finite, and
      tracker = 0. (float(a * b): the product in double, rounded once to fp32.)

Line format, one per step of a run:
  run <name> step <i> kind <finite|inf|nan> unscale_first <0|1> stepped <0|1> scale <after update> tracker <after update>
and at the end of each run:  params <name> <values...>
"""
import math
import os

import torch
import torch.cuda.amp.grad_scaler as grad_scaler

grad_scaler.amp_definitely_not_available = lambda: False
assert False, "run with python3 -O (GradScaler's CUDA asserts must be compiled out)"  # noqa: B011


def update_scale_(scale, tracker, found_inf, growth, backoff, interval):
    if found_inf.item() > 0:
        scale.fill_(float(torch.tensor(scale.item() * backoff, dtype=torch.float32)))
        tracker.zero_()
    else:
        successful = int(tracker.item()) + 1
        if successful == interval:
            grown = float(torch.tensor(scale.item() * growth, dtype=torch.float32))
            if math.isfinite(grown):
                scale.fill_(grown)
            tracker.zero_()
        else:
            tracker.fill_(successful)
    return scale


def check_and_unscale_(grads, found_inf, inv_scale):
    for g in grads:
        if not torch.isfinite(g).all():
            found_inf.fill_(1.0)
        g.mul_(inv_scale)


torch._amp_update_scale_ = update_scale_
torch._amp_foreach_non_finite_check_and_unscale_ = check_and_unscale_

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "grad_scaler.txt")
lines = []


def run(name, kinds, unscale_first, options, clip=None):
    """kinds[i]: 'finite', 'inf' or 'nan' gradient at step i; unscale_first: steps that call
    unscale_() (and clip) before step()."""
    p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float32))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.cuda.amp.GradScaler(**options)
    for i, kind in enumerate(kinds):
        opt.zero_grad()
        x = torch.tensor([1.0 + 0.01 * i, -2.0, 0.5, 3.0 - 0.02 * i], dtype=torch.float32)
        if kind == "inf":
            x[1] = float("inf")
        elif kind == "nan":
            x[2] = float("nan")
        loss = (p * x).sum() * 1e-3
        scaler.scale(loss).backward()
        first = i in unscale_first
        if first:
            scaler.unscale_(opt)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_([p], clip)
        before = p.detach().clone()
        scaler.step(opt)
        stepped = int(not torch.equal(before, p.detach()))
        scaler.update()
        lines.append(f"run {name} step {i} kind {kind} unscale_first {int(first)} stepped {stepped} "
                     f"scale {scaler.get_scale()!r} tracker {int(scaler.state_dict()['_growth_tracker'])}")
    lines.append(f"params {name} " + " ".join(repr(v) for v in p.detach().tolist()))


# A short growth interval, so growth and backoff interleave; unscale_ + clipping on some steps.
short = ["finite"] * 3 + ["inf"] + ["finite"] * 7 + ["nan", "inf"] + ["finite"] * 5 + ["inf"] + ["finite"] * 4
run("short", short, unscale_first={2, 5, 9, 14}, options=dict(init_scale=1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3),
    clip=0.5)
# Other factors, and a scale that would overflow fp32 when grown: it stays where it is.
run("factors", ["finite"] * 6 + ["inf"] + ["finite"] * 3, unscale_first=set(),
    options=dict(init_scale=2.0 ** 126, growth_factor=4.0, backoff_factor=0.25, growth_interval=2))
# The defaults (2^16, x2, x0.5, 2000): growth after 2000 clean steps, backoff on the inf steps.
default = ["finite"] * 2100
default[40] = "inf"
default[2070] = "nan"
run("default", default, unscale_first={100}, options={})

with open(OUT, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"wrote {len(lines)} lines to {OUT}")
