"""Writes the deterministic reference fixture cases under tests/fixtures/ref/<case>/.

Each case folder is a loadable checkpoint (config.json + model.safetensors, or 3 shards + index)
plus the expected outputs of jetmoe_ref.py computed in float64 from the exactly-upcast weights:

  input_ids.npy      int64   [T]            prompt (BOS first)
  logits.npy         float32 [T, V]         logits of one forward pass over the prompt
  router_logits.npy  float32 [L, 2, T, E]   [:, 0] attention (MoA) router, [:, 1] MLP (MoE) router
  gen_tokens.npy     int64   [N]            greedy tokens with the KV cache, N steps, no EOS stop
  gen_logits.npy     float32 [N, V]         logits each generated token was chosen from
  case.json          description, ce loss, margins, sensitivity figures, file list

Seeds are searched upward from each case's base seed until the routing and greedy margins
exceed MIN_MARGIN, so that a float32 engine cannot legitimately pick different experts/tokens.

Usage: /usr/bin/python3 tools/reference/make_fixtures.py [--out tests/fixtures/ref] [--only CASE ...]
"""

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jetmoe_ref as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MIN_MARGIN = 2e-3       # min gap between the k-th and (k+1)-th router logit, and greedy top1 - top2
MAX_SEED_TRIES = 500


@dataclass(frozen=True)
class Profile:
    """Init scales. Matrices: normal(0, gain / sqrt(fan_in)) so activations stay O(1) and attention
    is far from uniform; norm weights normal(mean, 0.25) and biases normal(0, bias_std), never 1 / 0."""
    embed_std: float = 0.4
    router_gain: float = 2.5        # router logits ~ N(0, 2.5^2): margins are not tiny
    qkv_gain: float = 1.3
    in_gain: float = 1.0            # mlp.input_linear
    out_gain: float = 0.6           # attention output_linear and mlp.output_linear
    bias_std: float = 0.2
    final_norm_mean: float = 1.0
    head_std: float = 0.4           # untied lm_head


# Residual stream ~1e-2, so mean(x^2) ~ 1e-4 and eps 1e-5 vs 1e-6 changes every norm by ~5%;
# the large final-norm weight brings the logits back to O(1).
SMALL_RESIDUAL = Profile(embed_std=0.01, out_gain=0.01, bias_std=0.004, final_norm_mean=40.0)


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    seed: int
    vocab: int = 128
    hidden: int = 32
    layers: int = 2
    kv_heads: int = 2
    kv_channels: int = 16
    experts: int = 4
    top_k: int = 2
    intermediate: int = 16
    dtype: str = "F32"
    tied: bool = True
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_positions: int = 256
    seq_len: int = 12
    gen_steps: int = 8
    shards: int = 1
    profile: Profile = Profile()

    def config(self) -> ref.JetMoeConfig:
        return ref.JetMoeConfig(
            vocab_size=self.vocab, hidden_size=self.hidden, num_layers=self.layers,
            num_kv_heads=self.kv_heads, head_dim=self.kv_channels, num_experts=self.experts,
            top_k=self.top_k, intermediate_size=self.intermediate, rope_theta=self.rope_theta,
            rms_norm_eps=self.rms_norm_eps, tie_word_embeddings=self.tied,
            max_position_embeddings=self.max_positions)


CASES = [
    Case("top2_of_4_f32", "baseline: F32, tied, 4 experts top-2, d=64, 4 KV heads x 16, F=96, V=512, 2 layers",
         seed=1000, vocab=512, hidden=64, kv_heads=4, kv_channels=16, intermediate=96),
    Case("top1_f32", "top-1 routing (gate is always 1), 4 KV heads x 8 channels", seed=2000, kv_heads=4,
         kv_channels=8, top_k=1),
    Case("e8_odd_f32", "8 experts top-2, odd sizes: d=27, 3 KV heads x 10 (H*D=30 != d), F=17, V=211, "
         "3 layers, T=11, rope_theta 1000", seed=3000, vocab=211, hidden=27, layers=3, kv_heads=3,
         kv_channels=10, experts=8, intermediate=17, rope_theta=1000.0, seq_len=11),
    Case("topk_all_f32", "k = E = 3: every expert always selected; 2 KV heads x 12 (H*D=24 != d=32)",
         seed=4000, experts=3, top_k=3, kv_channels=12),
    Case("bf16", "BF16 weights (upcast exactly, float64 compute), 4 experts top-2, F=32, V=256",
         seed=5000, vocab=256, intermediate=32, dtype="BF16"),
    Case("f16", "F16 weights (upcast exactly, float64 compute; includes some F16 subnormals)",
         seed=6000, vocab=256, intermediate=32, dtype="F16"),
    Case("sharded_f32", "F32 checkpoint written as 3 shards + model.safetensors.index.json",
         seed=7000, shards=3, hidden=24, kv_channels=12),
    Case("untied_f32", "tie_word_embeddings false: separate lm_head.weight [V, d]", seed=8000, tied=False, hidden=24, kv_channels=12),
    Case("seq1_f32", "prompt of one token (BOS only); no next-token loss", seed=9000, seq_len=1, hidden=24, kv_channels=12),
    Case("long_f32", "T=130 prompt (+8 generated, positions up to 137) to exercise RoPE at larger positions",
         seed=10000, seq_len=130),
    Case("rms_eps_f32", "final norm eps 1e-5 (config) vs block norms 1e-6 (always): tiny residual stream "
         "so both eps choices are visible in the logits", seed=11000, profile=SMALL_RESIDUAL,
         hidden=24, kv_channels=12),
]


# ----------------------------------------------------------------------------------------------
# Weights and inputs
# ----------------------------------------------------------------------------------------------

def make_weights(case: Case, rng: np.random.Generator):
    """HF-named tensors in checkpoint order, already rounded to the storage dtype (float32 arrays)."""
    cfg, pr = case.config(), case.profile
    d, E, HD, F, V = cfg.hidden_size, cfg.num_experts, cfg.num_kv_heads * cfg.head_dim, \
        cfg.intermediate_size, cfg.vocab_size

    def normal(shape, std, mean=0.0):
        return mean + std * rng.standard_normal(shape)

    w = {"model.embed_tokens.weight": normal((V, d), pr.embed_std)}
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = normal((d,), 0.25, mean=1.0)
        w[p + "self_attention.experts.router.layer.weight"] = normal((E, d), pr.router_gain / np.sqrt(d))
        w[p + "self_attention.experts.input_linear.weight"] = normal((E, HD, d), pr.qkv_gain / np.sqrt(d))
        w[p + "self_attention.experts.output_linear.weight"] = normal((E, d, HD), pr.out_gain / np.sqrt(HD))
        w[p + "self_attention.experts.bias"] = normal((d,), pr.bias_std)
        w[p + "self_attention.kv_proj.weight"] = normal((2 * HD, d), pr.qkv_gain / np.sqrt(d))
        w[p + "post_attention_layernorm.weight"] = normal((d,), 0.25, mean=1.0)
        w[p + "mlp.router.layer.weight"] = normal((E, d), pr.router_gain / np.sqrt(d))
        w[p + "mlp.input_linear.weight"] = normal((E, 2 * F, d), pr.in_gain / np.sqrt(d))
        w[p + "mlp.output_linear.weight"] = normal((E, d, F), pr.out_gain / np.sqrt(F))
        w[p + "mlp.bias"] = normal((d,), pr.bias_std)
    w["model.norm.weight"] = normal((d,), 0.25 * pr.final_norm_mean, mean=pr.final_norm_mean)
    if not cfg.tie_word_embeddings:
        w["lm_head.weight"] = normal((V, d), pr.head_std)
    return {n: ref.round_to_dtype(v, case.dtype) for n, v in w.items()}


def make_prompt(case: Case, rng: np.random.Generator) -> np.ndarray:
    ids = rng.integers(3, case.vocab, size=case.seq_len, dtype=np.int64)  # avoid pad/BOS/EOS ids
    ids[0] = 1  # BOS
    return ids


# ----------------------------------------------------------------------------------------------
# Expected outputs and margins
# ----------------------------------------------------------------------------------------------

def router_margin(router_logits: torch.Tensor, top_k: int):
    """Smallest gap between the k-th and (k+1)-th logit of any router/token; None when k == E
    (no choice to make). Order inside the top-k does not matter (the slots are interchangeable)."""
    if top_k == router_logits.shape[-1]:
        return None
    ranked = router_logits.sort(dim=-1, descending=True).values
    return float((ranked[..., top_k - 1] - ranked[..., top_k]).min())


def greedy_margin(step_logits: torch.Tensor) -> float:
    top2 = step_logits.topk(2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def evaluate(case: Case, seed: int):
    """Weights, prompt and float64 outputs for one seed."""
    rng = np.random.default_rng(seed)
    weights = make_weights(case, rng)
    prompt = make_prompt(case, rng)
    model = ref.JetMoeReference(case.config(), {n: torch.from_numpy(v) for n, v in weights.items()},
                                dtype=torch.float64)
    ids = torch.from_numpy(prompt)
    with torch.no_grad():
        out = model.forward(ids)
        gen = ref.greedy_generate(model, ids, case.gen_steps)
    margins = [router_margin(r, case.top_k) for r in gen.router_logits]
    return {
        "weights": weights, "prompt": prompt, "model": model, "out": out, "gen": gen,
        "router_margin": None if margins[0] is None else min(margins),
        "greedy_margin": greedy_margin(gen.step_logits),
    }


def acceptable(case: Case, r) -> bool:
    router_ok = r["router_margin"] is None or r["router_margin"] > MIN_MARGIN
    # A generation that varies exercises the cache harder than one repeated token.
    varied = len(set(r["gen"].tokens.tolist())) > 1
    return router_ok and r["greedy_margin"] > MIN_MARGIN and varied


def extra_checks(case: Case, r):
    """Cache consistency, float32-reference error, and how visible the norm eps choices are."""
    model, gen, prompt = r["model"], r["gen"], torch.from_numpy(r["prompt"])
    cfg, weights = model.config, {n: torch.from_numpy(v) for n, v in r["weights"].items()}
    with torch.no_grad():
        # Uncached: one pass over prompt + generated tokens (all but the last) must reproduce each step.
        full = torch.cat([prompt, gen.tokens[:-1]])
        uncached = model.forward(full).logits[prompt.numel() - 1:]
        cache_diff = float((uncached - gen.step_logits).abs().max())
        f32 = ref.JetMoeReference(cfg, weights, dtype=torch.float32).forward(prompt).logits.double()
        block_cfg_eps = ref.JetMoeReference(cfg, weights, block_norm_eps=cfg.rms_norm_eps).forward(prompt).logits
        final_1e6 = ref.JetMoeReference(cfg, weights, final_norm_eps=1e-6).forward(prompt).logits
    base = r["out"].logits
    return {
        "max_abs_diff_cached_vs_uncached_logits": cache_diff,
        "reference_float32_vs_float64_logits_max_abs": float((f32 - base).abs().max()),
        "logits_max_abs_change_if_block_norms_used_config_eps": float((block_cfg_eps - base).abs().max()),
        "logits_max_abs_change_if_final_norm_used_1e-6": float((final_1e6 - base).abs().max()),
    }


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

FILE_DESCRIPTIONS = {
    "input_ids.npy": ("int64", "prompt token ids [T], BOS first"),
    "logits.npy": ("float32", "logits [T, V] of one forward pass over the prompt (float64 compute)"),
    "router_logits.npy": ("float32", "router logits [L, 2, T, E]; [:, 0] attention (MoA), [:, 1] MLP (MoE)"),
    "gen_tokens.npy": ("int64", "greedy tokens [N] with the KV cache; step 0 is chosen from the prompt's "
                       "last position; no EOS stop"),
    "gen_logits.npy": ("float32", "logits [N, V] each generated token was chosen from"),
}


def write_case(case: Case, seed: int, r, root: str):
    folder = os.path.join(root, case.name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    cfg = case.config()
    torch_dtype = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[case.dtype]
    config_dict = cfg.to_hf_dict(torch_dtype)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_dict, f, indent=2)
        f.write("\n")

    tensors = {n: (case.dtype, v) for n, v in r["weights"].items()}
    if case.shards > 1:
        ckpt_files = ref.write_sharded_safetensors(folder, tensors, case.shards) + ["model.safetensors.index.json"]
    else:
        ref.write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
        ckpt_files = ["model.safetensors"]

    out, gen = r["out"], r["gen"]
    arrays = {
        "input_ids.npy": r["prompt"].astype(np.int64),
        "logits.npy": out.logits.numpy().astype(np.float32),
        "router_logits.npy": out.router_logits.numpy().astype(np.float32),
        "gen_tokens.npy": gen.tokens.numpy().astype(np.int64),
        "gen_logits.npy": gen.step_logits.numpy().astype(np.float32),
    }
    for name, array in arrays.items():
        np.save(os.path.join(folder, name), array)

    ce = ref.next_token_ce_loss(out.logits, torch.from_numpy(r["prompt"]))
    subnormals = sum(int(np.count_nonzero((v != 0) & (np.abs(v) < np.finfo(np.float16).tiny)))
                     for v in r["weights"].values()) if case.dtype == "F16" else 0
    info = {
        "case": case.name,
        "description": case.description,
        "generator": "tools/reference/make_fixtures.py (jetmoe_ref.py, float64 compute from exactly upcast weights)",
        "seed": seed,
        "checkpoint": {"dtype": case.dtype, "files": ckpt_files, "tied_embeddings": case.tied,
                       "num_parameters": int(sum(v.size for v in r["weights"].values())),
                       **({"f16_subnormal_values": subnormals} if case.dtype == "F16" else {})},
        "shapes": {"layers": cfg.num_layers, "hidden": cfg.hidden_size, "kv_heads": cfg.num_kv_heads,
                   "kv_channels": cfg.head_dim, "experts": cfg.num_experts, "top_k": cfg.top_k,
                   "intermediate": cfg.intermediate_size, "vocab": cfg.vocab_size},
        "seq_len": case.seq_len,
        "gen_steps": case.gen_steps,
        "ce_loss": None if ce is None else float(ce),
        "ce_loss_definition": "mean over t < T-1 of cross-entropy(logits[t], input_ids[t+1]); null when T == 1",
        "block_norm_eps": ref.BLOCK_NORM_EPS,
        "final_norm_eps": cfg.rms_norm_eps,
        "checks": {
            "min_router_topk_margin": r["router_margin"],
            "min_router_topk_margin_scope": "all routers, prompt and generation steps; null when top_k == E",
            "min_greedy_top1_top2_margin": r["greedy_margin"],
            **extra_checks(case, r),
        },
        "init": {"matrices": "normal(0, gain / sqrt(fan_in))", "norm_weights": "normal(mean, 0.25 * mean)",
                 "biases": "normal(0, bias_std)", **case.profile.__dict__},
        "files": {n: {"shape": list(a.shape), "dtype": FILE_DESCRIPTIONS[n][0], "description": FILE_DESCRIPTIONS[n][1]}
                  for n, a in arrays.items()},
    }
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    # The written checkpoint must read back to exactly the weights the outputs came from.
    config_back, tensors_back = ref.load_checkpoint(folder)
    assert config_back == cfg, f"{case.name}: config.json does not read back"
    for n, v in r["weights"].items():
        assert tensors_back[n][0] == case.dtype and np.array_equal(tensors_back[n][1], v), f"{case.name}: {n}"
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "ref"))
    parser.add_argument("--only", nargs="*", help="case names to (re)generate")
    args = parser.parse_args()
    selected = [c for c in CASES if not args.only or c.name in args.only]
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for case in selected:
        for seed in range(case.seed, case.seed + MAX_SEED_TRIES):
            r = evaluate(case, seed)
            if acceptable(case, r):
                break
        else:
            raise SystemExit(f"{case.name}: no seed in {MAX_SEED_TRIES} tries gives margins > {MIN_MARGIN}")
        folder = write_case(case, seed, r, args.out)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        total += size
        rm = r["router_margin"]
        print(f"{case.name:14s} seed {seed:5d}  {size / 1024:7.1f} KiB  router margin "
              f"{'n/a' if rm is None else f'{rm:.2e}'}  greedy margin {r['greedy_margin']:.2e}  "
              f"gen {r['gen'].tokens.tolist()}")
    print(f"total {total / 1024:.1f} KiB in {args.out}")


if __name__ == "__main__":
    main()
