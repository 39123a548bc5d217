#!/usr/bin/python3
"""Checkpoint fixtures: a small PyTorch model's weights in the safetensors format, with an input
and the model's output, and a file of every dtype dsm supports.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/gen_io.py
Output: tests/reference/fixtures/torch_mlp.safetensors, dtypes.safetensors and io.txt.

The `safetensors` Python package is not available on the development machines (no PyPI), so
the files are written here to the format's specification, with the layout the reference writer
(safetensors' Rust core) produces: tensors sorted by dtype (the order of its Dtype enum,
descending) then name, compact JSON with "__metadata__" first, the header padded with spaces to
a multiple of 8 bytes. dsm's writer is tested to reproduce these files byte for byte.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_ops import OUT, Writer  # noqa: E402

# safetensors' Dtype enum order (its writer sorts by this, largest first).
DTYPES = {torch.bool: ("BOOL", 0), torch.uint8: ("U8", 1), torch.int8: ("I8", 2), torch.float16: ("F16", 7),
          torch.bfloat16: ("BF16", 8), torch.int32: ("I32", 9), torch.float32: ("F32", 11), torch.float64: ("F64", 12),
          torch.int64: ("I64", 13)}


def save_file(tensors, path, metadata=None):
    items = sorted(tensors.items(), key=lambda kv: (-DTYPES[kv[1].dtype][1], kv[0]))
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, t in items:
        t = t.contiguous()
        data = t.view(torch.uint8).numpy().tobytes() if t.dim() > 0 else t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_file(path):
    """Reads a safetensors file back (used to check the files written here)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    names = {v[0]: k for k, v in DTYPES.items()}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = bytearray(raw[8 + n + b:8 + n + e])
        out[name] = torch.frombuffer(buf, dtype=names[info["dtype"]]).reshape(info["shape"]) if e > b else \
            torch.empty(info["shape"], dtype=names[info["dtype"]])
    return out


def main():
    torch.set_default_dtype(torch.float32)  # gen_ops sets float64 when imported
    torch.manual_seed(99)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    path = os.path.join(OUT, "torch_mlp.safetensors")
    save_file(model.state_dict(), path, {"format": "pt"})
    back = load_file(path)
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())
    x = torch.randn(5, 4)
    w = Writer("io.txt")
    w.put("mlp.x", x.double())
    w.put("mlp.y", model(x).detach().double())

    dtypes = {
        "f64": torch.tensor([[1.5, -2.25]], dtype=torch.float64),
        "f32": torch.tensor([3.0, -0.5, 1e-3], dtype=torch.float32),
        "bf16": torch.tensor([1.0, -3.5, 0.1], dtype=torch.bfloat16),
        "f16": torch.tensor([[2.0], [-0.25]], dtype=torch.float16),
        "i64": torch.tensor([-(2 ** 40), 7], dtype=torch.int64),
        "i32": torch.tensor([-5, 6, 7], dtype=torch.int32),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 9], dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(4.0),
    }
    save_file(dtypes, os.path.join(OUT, "dtypes.safetensors"), {"format": "pt", "note": "every dtype"})
    for name, t in dtypes.items():
        w.put("dtypes." + name, t.double() if t.is_floating_point() else t.long())
    w.save()


if __name__ == "__main__":
    main()
