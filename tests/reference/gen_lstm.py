#!/usr/bin/python3
"""PyTorch reference values for torch.nn.LSTM: outputs, final states and every gradient, for
stacked, bidirectional, batch-first and time-first layers, with initial states and with variable
lengths (pack_padded_sequence / pad_packed_sequence). All in float64.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_lstm.py
Output: tests/reference/fixtures/lstm.txt (same line format as gen_ops.py).
"""
import os
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_ops import Writer  # noqa: E402

torch.manual_seed(11)
torch.set_default_dtype(torch.float64)

# name, input size, hidden, layers, bidirectional, batch_first, lengths (None: full), initial state
CASES = [
    ("stacked", 4, 3, 2, False, True, None, True),
    ("bi_lengths", 4, 3, 1, True, True, [5, 3, 1], False),
    ("bi_stacked_time_first", 3, 2, 2, True, False, [4, 5, 2, 5], True),
]
STEPS = 5


def case(w, name, inp, hid, layers, bi, batch_first, lengths, with_state):
    batch = 3 if lengths is None else len(lengths)
    lstm = torch.nn.LSTM(inp, hid, layers, bidirectional=bi, batch_first=batch_first)
    d = 2 if bi else 1
    x = torch.randn((batch, STEPS, inp) if batch_first else (STEPS, batch, inp), requires_grad=True)
    h0 = torch.randn(layers * d, batch, hid, requires_grad=True)
    c0 = torch.randn(layers * d, batch, hid, requires_grad=True)
    state = (h0, c0) if with_state else None
    if lengths is None:
        out, (hn, cn) = lstm(x, state)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out, (hn, cn) = lstm(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=STEPS)
    r_out, r_h, r_c = torch.randn_like(out), torch.randn_like(hn), torch.randn_like(cn)
    loss = (out * r_out).sum() + (hn * r_h).sum() + (cn * r_c).sum()
    loss.backward()
    p = name + "."
    w.put(p + "x", x.detach())
    if lengths is not None:
        w.put(p + "lengths", torch.tensor(lengths))
    if with_state:
        w.put(p + "h0", h0.detach())
        w.put(p + "c0", c0.detach())
        w.put(p + "grad.h0", h0.grad)
        w.put(p + "grad.c0", c0.grad)
    for k, v in lstm.named_parameters():
        w.put(p + k, v.detach())
        w.put(p + "grad." + k, v.grad)
    for k, v in (("out", out), ("h_n", hn), ("c_n", cn), ("r_out", r_out), ("r_h", r_h), ("r_c", r_c)):
        w.put(p + k, v.detach())
    w.put(p + "grad.x", x.grad)


def main():
    w = Writer("lstm.txt")
    for c in CASES:
        case(w, *c)
    w.save()


if __name__ == "__main__":
    main()
