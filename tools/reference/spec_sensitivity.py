"""How strongly the HF fixtures pin down each spec point.

Runs jetmoe_ref.py on every tests/fixtures/hf-reference case with one deliberate misreading of
the spec at a time and prints the max abs logits difference from HF. A misreading that moves the
logits far beyond the 1e-4 tolerance is ruled out by the HF data; one that does not (e.g. the
block-norm eps when the config's eps is already 1e-6) is NOT confirmed by these fixtures.

Usage: /usr/bin/python3 tools/reference/spec_sensitivity.py [hf-reference folder]
"""

import contextlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jetmoe_ref as ref  # noqa: E402
from check_against_hf import DEFAULT_ROOT, batch_forward  # noqa: E402


class InterleavedKV(ref.JetMoeReference):
    """Stock GQA mapping: query head q uses KV head q div k."""

    def kv_head_of_query_head(self, query_heads):
        return query_heads // self.config.top_k


def route_softmax_over_all(h, router_weight, top_k):
    logits = h @ router_weight.T
    _, experts = torch.topk(logits, top_k, dim=-1)
    return logits, experts, torch.softmax(logits, dim=-1).gather(1, experts)


def route_ascending_slots(h, router_weight, top_k):
    logits, experts, gates = ORIGINAL["route"](h, router_weight, top_k)
    return logits, experts.flip(1), gates.flip(1)


def rope_adjacent_pairs(v, cos, sin):
    """GPT-J style: rotates pairs (2i, 2i+1) instead of (i, i + D/2)."""
    even, odd = v[..., 0::2], v[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack([even * c - odd * s, odd * c + even * s], dim=-1).flatten(-2)


def no_rope(v, cos, sin):
    return v


ORIGINAL = {"route": ref.route, "apply_rope": ref.apply_rope}


@contextlib.contextmanager
def patched(**functions):
    for name, fn in functions.items():
        setattr(ref, name, fn)
    try:
        yield
    finally:
        for name in functions:
            setattr(ref, name, ORIGINAL[name])


def swap_halves(tensor, dim):
    a, b = tensor.chunk(2, dim=dim)
    return torch.cat([b, a], dim=dim)


def weights_with(weights, suffix, transform):
    return {n: (transform(w) if n.endswith(suffix) else w) for n, w in weights.items()}


def misreadings(config, weights):
    """name -> (model class, weights, patches, extra kwargs)."""
    M = ref.JetMoeReference
    return {
        "none (spec as written)": (M, weights, {}, {}),
        "slot order ascending (spec: irrelevant)": (M, weights, {"route": route_ascending_slots}, {}),
        "P1 KV interleave q div k": (InterleavedKV, weights, {}, {}),
        "P4 gates = softmax over all E": (M, weights, {"route": route_softmax_over_all}, {}),
        "P6 GLU halves swapped": (M, weights_with(weights, "mlp.input_linear.weight",
                                                  lambda w: swap_halves(w, 1)), {}, {}),
        "P8 K/V halves swapped": (M, weights_with(weights, "kv_proj.weight", lambda w: swap_halves(w, 0)), {}, {}),
        "P7 biases omitted": (M, weights_with(weights, "bias", torch.zeros_like), {}, {}),
        "P10 RoPE adjacent pairs": (M, weights, {"apply_rope": rope_adjacent_pairs}, {}),
        "P10 no RoPE": (M, weights, {"apply_rope": no_rope}, {}),
        "P9 all norms eps 1e-5": (M, weights, {}, {"block_norm_eps": 1e-5, "final_norm_eps": 1e-5}),
    }


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_ROOT
    for case in sorted(os.listdir(root)):
        folder = os.path.join(root, case)
        if not os.path.exists(os.path.join(folder, "manifest.json")):
            continue
        manifest = json.load(open(os.path.join(folder, "manifest.json")))
        config, tensors = ref.load_checkpoint(os.path.join(folder, manifest["checkpoint_dir"]))
        weights = {n: torch.tensor(v, dtype=torch.float64) for n, (_, v) in tensors.items()}
        input_ids, hf_logits = np.load(os.path.join(folder, "input_ids.npy")), np.load(os.path.join(folder, "logits.npy"))
        print(f"== {case}: max |logits - HF| under each misreading (tolerance {manifest['tolerances']['logits_max_abs']})")
        for name, (cls, w, patches, kwargs) in misreadings(config, weights).items():
            with torch.no_grad(), patched(**patches):
                logits, _ = batch_forward(cls(config, w, **kwargs), input_ids)
            print(f"  {name:42s} {float(np.max(np.abs(logits.numpy() - hf_logits))):.3e}")


if __name__ == "__main__":
    main()
