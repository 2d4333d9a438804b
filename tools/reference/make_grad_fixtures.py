"""Writes gradient fixtures under tests/fixtures/ref-grads/<case>/ for some of the tests/fixtures/ref cases.

For each case: the checkpoint of tests/fixtures/ref/<case> (not copied), a batch of two sequences
(the case's prompt plus a second random one of the same length), labels with a few ignored
positions, and torch autograd in float64 of the training loss of spec section 2.3:

  L = CE + alpha * sum_routers L_b + beta * sum_routers L_z
  CE  = mean over all scored tokens of the batch of cross-entropy(logits[b, t], labels[b, t + 1])
  per router (every MoA and every MoE layer), over the N = B*T tokens of the batch:
    f_i = (assignments to expert i) / (N * k)            count, no gradient
    P_i = mean_t softmax(x_t)_i                          softmax over all E logits
    L_b = E * sum_i f_i P_i
    L_z = mean_t logsumexp(x_t)^2

alpha and beta are larger than the training defaults (0.01, 0.001) so that the auxiliary terms
move the router gradients visibly; the loss is linear in them.

Files per case:
  input_ids.npy       int64 [B, T]
  labels.npy          int64 [B, T]   HF convention: logits[b, t] is scored against labels[b, t + 1]; -100 = ignored
  grads.safetensors   F32, d L / d param for every parameter under its HF name (tied: the embedding
                      gradient includes the head's)
  case.json           coefficients, loss terms (ce, per-router L_b and L_z, expert fractions), margins

Usage: /usr/bin/python3 tools/reference/make_grad_fixtures.py [--out tests/fixtures/ref-grads] [--only CASE ...]
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jetmoe_ref as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CASES = ["top1_f32", "e8_odd_f32", "topk_all_f32", "untied_f32", "bf16"]
ALPHA = 0.1    # load-balancing coefficient used for the fixture (training default 0.01)
BETA = 0.01    # z-loss coefficient used for the fixture (training default 0.001)
MIN_MARGIN = 2e-3  # k-th vs (k+1)-th router logit gap, so a float32 engine routes the same way
MAX_SEED_TRIES = 500
IGNORE = -100


def router_margin(router_logits: torch.Tensor, top_k: int):
    if top_k == router_logits.shape[-1]:
        return None
    ranked = router_logits.sort(dim=-1, descending=True).values
    return float((ranked[..., top_k - 1] - ranked[..., top_k]).min())


def router_aux_losses(logits: torch.Tensor, top_k: int):
    """logits [N, E] of one router over the whole batch -> (L_b, L_z, f)."""
    N, E = logits.shape
    experts = torch.topk(logits, top_k, dim=-1).indices
    f = torch.bincount(experts.reshape(-1), minlength=E).to(logits.dtype) / (N * top_k)
    P = torch.softmax(logits, dim=-1).mean(dim=0)
    load_balance = E * (f * P).sum()
    z_loss = (torch.logsumexp(logits, dim=-1) ** 2).mean()
    return load_balance, z_loss, f


def make_batch(case_dir: str, cfg: ref.JetMoeConfig, seed: int):
    prompt = np.load(os.path.join(case_dir, "input_ids.npy")).astype(np.int64)
    rng = np.random.default_rng(seed)
    second = rng.integers(3, cfg.vocab_size, size=prompt.size, dtype=np.int64)
    second[0] = 1  # BOS
    ids = np.stack([prompt, second])
    labels = ids.copy()
    labels[0, 3] = IGNORE        # a masked label in the middle of a sequence
    labels[1, -2:] = IGNORE      # and a masked tail
    return ids, labels


def evaluate(folder: str, ids: np.ndarray, labels: np.ndarray):
    config, tensors = ref.load_checkpoint(folder)
    leaves = {n: torch.from_numpy(v).to(torch.float64).requires_grad_(True) for n, (_, v) in tensors.items()}
    model = ref.JetMoeReference(config, leaves, dtype=torch.float64)
    outs = [model.forward(torch.from_numpy(row)) for row in ids]

    logits = torch.stack([o.logits for o in outs])                 # [B, T, V]
    targets = torch.from_numpy(labels[:, 1:]).reshape(-1)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, config.vocab_size), targets,
                                           ignore_index=IGNORE, reduction="mean")
    router = torch.stack([o.router_logits for o in outs], dim=2)   # [L, 2, B, T, E]
    balance, zloss, fractions = [], [], []
    for layer in range(config.num_layers):
        for which in range(2):
            lb, lz, f = router_aux_losses(router[layer, which].reshape(-1, config.num_experts), config.top_k)
            balance.append(lb)
            zloss.append(lz)
            fractions.append(f)
    total = ce + ALPHA * torch.stack(balance).sum() + BETA * torch.stack(zloss).sum()
    total.backward()
    grads = {n: leaves[n].grad.numpy().astype(np.float32) for n in tensors}
    return {
        "config": config,
        "grads": grads,
        "ce": float(ce),
        "scored_tokens": int((targets != IGNORE).sum()),
        "load_balance": [float(x) for x in balance],
        "z_loss": [float(x) for x in zloss],
        "expert_fraction": [f.tolist() for f in fractions],
        "total": float(total),
        "router_margin": router_margin(router.detach(), config.top_k),
    }


def write_case(name: str, out_root: str):
    case_dir = os.path.join(REPO, "tests", "fixtures", "ref", name)
    config = ref.load_config(os.path.join(case_dir, "config.json"))
    base_seed = 20000 + 100 * CASES.index(name)
    for seed in range(base_seed, base_seed + MAX_SEED_TRIES):
        ids, labels = make_batch(case_dir, config, seed)
        r = evaluate(case_dir, ids, labels)
        if r["router_margin"] is None or r["router_margin"] > MIN_MARGIN:
            break
    else:
        raise SystemExit(f"{name}: no seed gives router margins > {MIN_MARGIN}")

    folder = os.path.join(out_root, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    np.save(os.path.join(folder, "input_ids.npy"), ids)
    np.save(os.path.join(folder, "labels.npy"), labels)
    ref.write_safetensors(os.path.join(folder, "grads.safetensors"), {n: ("F32", g) for n, g in r["grads"].items()})
    info = {
        "case": name,
        "checkpoint": f"tests/fixtures/ref/{name}",
        "generator": "tools/reference/make_grad_fixtures.py (jetmoe_ref.py + torch autograd, float64)",
        "seed": seed,
        "batch": int(ids.shape[0]),
        "seq_len": int(ids.shape[1]),
        "aux_coef": ALPHA,
        "z_coef": BETA,
        "ce_loss": r["ce"],
        "scored_tokens": r["scored_tokens"],
        "load_balance_per_router": r["load_balance"],
        "z_loss_per_router": r["z_loss"],
        "expert_fraction_per_router": r["expert_fraction"],
        "router_order": "layer by layer, attention (MoA) router then MLP (MoE) router",
        "total_loss": r["total"],
        "min_router_topk_margin": r["router_margin"],
        "grad_max_abs": {n: float(np.abs(g).max()) for n, g in r["grads"].items()},
    }
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    margin = r["router_margin"]
    print(f"{name:14s} seed {seed}  {size / 1024:7.1f} KiB  total {r['total']:.6f}  ce {r['ce']:.6f}  "
          f"router margin {'n/a' if margin is None else f'{margin:.2e}'}")
    return size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "ref-grads"))
    parser.add_argument("--only", nargs="*", help="case names to (re)generate")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    total = sum(write_case(name, args.out) for name in CASES if not args.only or name in args.only)
    print(f"total {total / 1024:.1f} KiB in {args.out}")


if __name__ == "__main__":
    main()
