#!/usr/bin/python3
"""Writes the committed fixtures of tests/fixtures/formats/ with tools that share no code with
jetmoe.cpp: safetensors bytes assembled by hand (struct + json, laid out the way the reference
writer does), element values rounded by torch / numpy, .npy files written by numpy itself.

Run from the repository root:  /usr/bin/python3 tests/unit/formats/make_fixtures.py
The C++ tests (tests/unit/formats/*_test.cc) read these files; rerunning must give the same bytes.
"""
import json
import os
import struct

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
OUT = os.path.join(ROOT, "tests", "fixtures", "formats")
HF = os.path.join(ROOT, "tests", "fixtures", "hf-reference")


def encode(dtype, values):
    """(raw little-endian bytes, values decoded back to float) for one tensor."""
    if dtype == "F32":
        arr = np.array(values, dtype="<f4")
        return arr.tobytes(), [float(v) for v in arr]
    if dtype == "F16":
        arr = np.array(values, dtype="<f2")
        return arr.tobytes(), [float(v) for v in arr.astype(np.float32)]
    if dtype == "BF16":
        t = torch.tensor(values, dtype=torch.float32).to(torch.bfloat16)
        raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        return raw, [float(v) for v in t.to(torch.float32).tolist()]
    raise ValueError(dtype)


def write_safetensors_by_hand(path, tensors, data_order, header_order, pad_header):
    """tensors: name -> (dtype, shape, values). Data is laid out in data_order; the header
    lists entries in header_order (deliberately unsorted). Returns name -> decoded values."""
    blobs, decoded, offsets = {}, {}, {}
    position = 0
    for name in data_order:
        dtype, shape, values = tensors[name]
        blobs[name], decoded[name] = encode(dtype, values)
        offsets[name] = [position, position + len(blobs[name])]
        position += len(blobs[name])
    header = {"__metadata__": {"format": "pt", "written_by": "make_fixtures.py"}}
    for name in header_order:
        dtype, shape, _ = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets[name]}
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad_header:  # like the reference writer: spaces up to a multiple of 8
        text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in data_order:
            f.write(blobs[name])
    return decoded


def make_safetensors_fixtures():
    expected = {}
    tensors = {
        # F32 specials: signed zero, a subnormal, the largest finite, the smallest normal.
        "weights.f32": ("F32", [3, 4], [0.0, -0.0, 1.5, -2.25, 3.14159265, 1e-40, 3.4e38, -1e-3, 0.1,
                                        12345.678, -7.0, 2.0 ** -126]),
        # BF16 values that need rounding (round to nearest even in torch).
        "weights.bf16": ("BF16", [2, 3, 2], [0.1, -0.2, 3.14159, 1e-3, 65504.0, -1e10, 1.0, 2.0, 0.333,
                                              -0.0, 1e-38, 5.5]),
        # F16: the largest finite, a subnormal, values that need rounding.
        "weights.f16": ("F16", [5], [0.1, 65504.0, 6e-8, -2.5, 1.0 / 3.0]),
        "scalar": ("F32", [], [42.5]),
        "empty": ("F16", [0, 3], []),
    }
    decoded = write_safetensors_by_hand(
        os.path.join(OUT, "independent.safetensors"), tensors,
        data_order=["weights.f32", "scalar", "weights.f16", "empty", "weights.bf16"],
        header_order=["weights.f32", "empty", "weights.f16", "scalar", "weights.bf16"],
        pad_header=True)
    expected["independent.safetensors"] = {
        name: {"dtype": tensors[name][0], "shape": tensors[name][1], "values": decoded[name]} for name in tensors}

    # No header padding and a BF16 tensor first: the F32 tensor after it is not 4-byte aligned
    # in the file. Legal for the format; readers must still return correct values.
    tensors = {
        "odd.bf16": ("BF16", [3], [1.0, -3.5, 0.1]),
        "odd.f32": ("F32", [2, 2], [1.25, -0.5, 1e-30, 7.0]),
    }
    decoded = write_safetensors_by_hand(
        os.path.join(OUT, "unaligned.safetensors"), tensors,
        data_order=["odd.bf16", "odd.f32"], header_order=["odd.f32", "odd.bf16"], pad_header=False)
    with open(os.path.join(OUT, "unaligned.safetensors"), "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
    assert (8 + header_len + 6) % 4 != 0, "the F32 tensor must be misaligned for this fixture"
    expected["unaligned.safetensors"] = {
        name: {"dtype": tensors[name][0], "shape": tensors[name][1], "values": decoded[name]} for name in tensors}

    with open(os.path.join(OUT, "independent.expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


def read_safetensors_by_hand(path):
    """name -> (dtype, shape, float64 values) decoded with numpy / torch."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "F32":
            values = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif info["dtype"] == "BF16":
            ints = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy())
            values = ints.view(torch.bfloat16).to(torch.float64).numpy()
        else:
            raise ValueError(info["dtype"])
        out[name] = (info["dtype"], info["shape"], values)
    return out


def make_hf_digests():
    """Per tensor of the HF reference checkpoints: dtype, shape, a few values and the sum."""
    digests = {}
    for case in sorted(os.listdir(HF)):
        path = os.path.join(HF, case, "ckpt", "model.safetensors")
        if not os.path.exists(path):
            continue
        digests[case] = {}
        for name, (dtype, shape, values) in sorted(read_safetensors_by_hand(path).items()):
            digests[case][name] = {
                "dtype": dtype, "shape": shape,
                "first": [float(v) for v in values[:4]], "last": float(values[-1]),
                "sum": float(np.sum(values)), "abs_sum": float(np.sum(np.abs(values))),
            }
    with open(os.path.join(OUT, "hf_reference_digest.json"), "w") as f:
        json.dump(digests, f, indent=1, sort_keys=True)
        f.write("\n")


def make_npy_fixtures():
    def save(name, array, version=None):
        path = os.path.join(OUT, name)
        if version is None:
            np.save(path, array)
        else:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, array, version=version)

    # Arrays our writer must reproduce byte for byte (values restated in npy_test.cc).
    save("numpy_f32_2x3.npy", (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3))
    save("numpy_f32_1d.npy", np.array([0.25, -1.0, 3.0e38, 1e-45, 7.0], dtype=np.float32))
    save("numpy_f32_scalar.npy", np.array(3.25, dtype=np.float32))
    save("numpy_f32_1000x0.npy", np.zeros((1000, 0), dtype=np.float32))
    # So many dimensions that numpy's spare room for growing the first one adds 64 bytes of header.
    many_dims = (2,) + (1,) * 13 + (3,)
    save("numpy_f32_15d.npy", (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(many_dims))
    with open(os.path.join(OUT, "numpy_f32_15d.npy"), "rb") as f:
        header_len = struct.unpack("<H", f.read(10)[8:10])[0]
    dict_len = len("{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (many_dims,))
    assert 10 + header_len > 10 + dict_len + 1 + (64 - (10 + dict_len + 1) % 64), "growth room must matter here"
    # Arrays our reader must decode.
    save("numpy_f64.npy", np.array([0.1, -2.5e300, 5e-324, 1.0 / 3.0, -0.0, 1e308]).reshape(3, 2))
    save("numpy_i8.npy", np.array([-(2 ** 53), -1, 0, 1, 32000, 2 ** 53], dtype="<i8").reshape(2, 3))
    save("numpy_i4.npy", np.array([-2 ** 31, 2 ** 31 - 1, 0, 7], dtype="<i4"))
    save("numpy_f32_v2.npy", np.array([1.5, 2.5], dtype=np.float32), version=(2, 0))
    # Arrays our reader must refuse.
    save("numpy_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    save("numpy_big_endian.npy", np.array([1.0, 2.0], dtype=">f4"))
    save("numpy_u8.npy", np.array([1, 2, 3], dtype=np.uint8))
    save("numpy_i8_inexact.npy", np.array([2 ** 53 + 1], dtype="<i8"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_safetensors_fixtures()
    make_hf_digests()
    make_npy_fixtures()
    print("wrote", OUT)
