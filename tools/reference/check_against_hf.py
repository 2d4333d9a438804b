"""Checks jetmoe_ref.py against the Hugging Face outputs committed in tests/fixtures/hf-reference/.

For every case folder (one with a manifest.json) it recomputes, in float64, the logits, router
logits, ce loss, greedy generation (with the KV cache) and the ce-loss gradient of every
parameter, and compares them with HF's float32 results under the manifest's tolerances.
Also reports how far a float32 run of the reference is from HF (informative only).

Usage: /usr/bin/python3 tools/reference/check_against_hf.py [hf-reference folder]
Exit status 0 when every figure is within tolerance, 1 otherwise.
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jetmoe_ref as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_ROOT = os.path.join(REPO, "tests", "fixtures", "hf-reference")


def batch_forward(model, input_ids):
    """Rows one at a time -> logits [B, T, V], router logits [L, 2, B, T, E]."""
    outs = [model.forward(torch.from_numpy(row)) for row in input_ids]
    return torch.stack([o.logits for o in outs]), torch.stack([o.router_logits for o in outs], dim=2)


def batch_ce_loss(logits, labels):
    """HF convention: logits[:, t] scored against labels[:, t+1]; -100 ignored; mean over kept tokens."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V),
                                             torch.from_numpy(labels[:, 1:]).reshape(-1), ignore_index=-100)


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def check_case(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    tol = manifest["tolerances"]
    load = lambda name: np.load(os.path.join(folder, name))  # noqa: E731
    input_ids, labels, positions = load("input_ids.npy"), load("labels.npy"), load("position_ids.npy")
    if not np.array_equal(positions, np.broadcast_to(np.arange(input_ids.shape[1]), positions.shape)):
        raise SystemExit(f"{folder}: position_ids are not 0..T-1; this checker only handles unpadded rows")

    config, tensors = ref.load_checkpoint(os.path.join(folder, manifest["checkpoint_dir"]))
    params = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, (_, v) in tensors.items()}
    model = ref.JetMoeReference(config, params, dtype=torch.float64)

    logits, router_logits = batch_forward(model, input_ids)
    ce = batch_ce_loss(logits, labels)
    ce.backward()

    figures = {}
    figures["logits"] = (max_abs(logits.detach(), load("logits.npy")), tol["logits_max_abs"])
    figures["router_logits"] = (max_abs(router_logits.detach(), load("router_logits.npy")), tol["router_logits_max_abs"])
    figures["ce_loss"] = (abs(float(ce) - float(load("loss.npy")[0])), tol["loss_abs"])

    with torch.no_grad():
        gens = [ref.greedy_generate(model, torch.from_numpy(row), manifest["gen_tokens"]) for row in input_ids]
        gen_tokens = np.stack([g.tokens.numpy() for g in gens])
        gen_logits = torch.stack([g.step_logits for g in gens])
    same_tokens = np.array_equal(gen_tokens, load("gen_tokens.npy"))
    figures["gen_logits"] = (max_abs(gen_logits, load("gen_logits.npy")), tol["logits_max_abs"])

    worst_grad, worst_name = 0.0, ""
    for name, param in params.items():
        hf_grad = load(os.path.join("grads_ce", name + ".npy")).astype(np.float64)
        scale = max(float(np.max(np.abs(hf_grad))), 1e-30)
        rel = max_abs(param.grad, hf_grad) / scale
        if rel >= worst_grad:
            worst_grad, worst_name = rel, name
    figures["grads_ce (max diff / max |grad|)"] = (worst_grad, tol["grads_max_abs_over_max"])

    with torch.no_grad():
        model32 = ref.JetMoeReference(config, {n: torch.from_numpy(v) for n, (_, v) in tensors.items()},
                                      dtype=torch.float32)
        logits32, _ = batch_forward(model32, input_ids)
    info = {"float32 reference vs HF logits": max_abs(logits32, load("logits.npy")),
            "worst gradient tensor": worst_name,
            "HF ce_loss": float(load("loss.npy")[0]), "reference ce_loss": float(ce)}
    return figures, same_tokens, gen_tokens, info


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_ROOT
    cases = sorted(c for c in os.listdir(root) if os.path.exists(os.path.join(root, c, "manifest.json")))
    if not cases:
        raise SystemExit(f"no cases with manifest.json under {root}")
    all_ok = True
    for case in cases:
        figures, same_tokens, gen_tokens, info = check_case(os.path.join(root, case))
        print(f"== {case}")
        for name, (value, limit) in figures.items():
            ok = value <= limit
            all_ok &= ok
            print(f"  {name:36s} {value:.3e}  (tol {limit:g})  {'ok' if ok else 'FAIL'}")
        all_ok &= same_tokens
        print(f"  {'greedy tokens':36s} {'identical' if same_tokens else 'DIFFER'}  {gen_tokens.tolist()}")
        for name, value in info.items():
            print(f"  {name:36s} {value:.3e}" if isinstance(value, float) else f"  {name:36s} {value}")
    print("ALL OK" if all_ok else "MISMATCH")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
