#!/usr/bin/python3
"""PyTorch next to jetmoe on the same checkpoint, inputs and thread count, timed in the same run.

Three tests, each in fp32 and bf16:
  prefill  P random token ids from an empty KV cache, logits of the last token   (jetmoe bench pp<P>)
  decode   N single-token steps from an empty KV cache                           (jetmoe bench tg<N>)
  train    one training step on B random sequences of T tokens: forward, loss CE + 0.01 load balance
           + 0.001 z-loss (spec 2.3), backward, clip to norm 1, AdamW               (jetmoe bench train<B>x<T>)

The PyTorch side ("peer") is the model of tools/reference/jetmoe_ref.py rewritten the way Hugging
Face's modeling_jetmoe runs it: batched, experts as grouped products (tokens sorted by expert, one
F.linear per expert, index_add with the gates), a preallocated KV cache, the head on the last token
only for prefill. The reference itself gathers a weight matrix per token (made to be readable, not
fast); timing it would flatter jetmoe. Before timing, the peer is checked against the reference
(logits of fixture checkpoints in float64, and of the benchmarked checkpoint in float32).

Precisions:
  fp32  PyTorch: weights upcast to fp32 (exact), fp32 compute.  jetmoe: -a f32 (stored weights read
        in place, fp32 activations).
  bf16  PyTorch inference: bf16 weights and activations (norms and softmax in fp32, like HF).
        PyTorch training: torch.autocast("cpu", bfloat16) over fp32 master weights.
        jetmoe: -a bf16 (bf16 dot products for prefill and training, fp32 decode; training on a bf16
        copy of fp32 masters).

Matrix products in PyTorch go to whatever BLAS libtorch loaded: Debian's python3-torch links the
reference libblas (about 1 GFLOP/s), so run this through bench/peer_compare.sh, which points it at
OpenBLAS. The BLAS in use and a GEMM probe are printed with the results.

Usage: bench/peer_compare.sh -m DIR [-p 128] [-n 32] [-t 2] [--train-batch 4] [--train-len 128] [-r 3]
         [--precisions fp32,bf16] [--json] [--skip-jetmoe] [--skip-train] [--no-check]
       (the wrapper sets up OpenBLAS and passes --jetmoe; see bench/README.md)
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

# OpenBLAS reads its thread count when it loads; set it before torch does.
if "OPENBLAS_NUM_THREADS" not in os.environ:
    for i, arg in enumerate(sys.argv):
        if arg in ("-t", "--threads") and i + 1 < len(sys.argv):
            os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[i + 1]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import jetmoe_ref as ref  # noqa: E402

AUX_COEF, Z_COEF = 0.01, 0.001  # jetmoe's LossOptions defaults
LR, BETAS, EPS, WEIGHT_DECAY, CLIP = 1e-4, (0.9, 0.95), 1e-8, 0.1, 1.0  # jetmoe bench's training update


# ----------------------------------------------------------------------------------------------
# The peer model
# ----------------------------------------------------------------------------------------------

def upcast(t):
    """bf16 / f16 -> fp32 for norms and softmaxes (as HF does); fp32 and fp64 stay."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def rms_norm(x, weight, eps):
    x32 = upcast(x)
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return (y * upcast(weight)).to(x.dtype)


def rope(x, cos, sin):
    """x [B, T, heads, D], cos/sin [T, D/2]: rotate-half over the whole head (spec 1.6)."""
    half = x.shape[-1] // 2
    lo, hi = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([lo * c - hi * s, hi * c + lo * s], dim=-1)


class ExpertGroups:
    """Routing of N tokens to their top-k experts, as groups: rows sorted by expert."""

    def __init__(self, router_logits, top_k, num_experts):
        top, experts = torch.topk(router_logits, top_k, dim=-1)
        self.gates = torch.softmax(upcast(top), dim=-1).to(router_logits.dtype)  # softmax over the k (P4)
        flat = experts.reshape(-1)                                  # [N*k], (token, slot) order
        self.order = torch.argsort(flat, stable=True)               # sorted by expert
        self.token = self.order // top_k                            # token of each sorted row
        self.sizes = torch.bincount(flat, minlength=num_experts).tolist()
        self.sorted_gates = self.gates.reshape(-1)[self.order]

    def products(self, rows, weight):
        """rows [N*k sorted, in] -> [N*k sorted, out]: one product per expert over its rows."""
        parts = [F.linear(chunk, weight[e]) for e, chunk in enumerate(rows.split(self.sizes)) if chunk.shape[0]]
        return torch.cat(parts) if parts else rows.new_zeros(0, weight.shape[1])

    def combine(self, sorted_out, num_tokens):
        """Gated sum of each token's k expert outputs (sorted rows) -> [N, out]."""
        y = sorted_out.new_zeros(num_tokens, sorted_out.shape[1])
        return y.index_add(0, self.token, sorted_out * self.sorted_gates[:, None])


class KVCache:
    def __init__(self, cfg, batch, capacity, dtype):
        shape = (cfg.num_layers, batch, capacity, cfg.num_kv_heads, cfg.head_dim)
        self.k, self.v = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
        self.length = 0


class PeerJetMoe(torch.nn.Module):
    def __init__(self, cfg: ref.JetMoeConfig, weights: dict, dtype: torch.dtype):
        super().__init__()
        self.cfg = cfg
        self.params = torch.nn.ParameterDict(
            {name.replace(".", "/"): torch.nn.Parameter(t.to(dtype), requires_grad=False)
             for name, t in weights.items() if name in cfg.expected_shapes()})

    def w(self, name):
        return self.params[name.replace(".", "/")]

    def head(self):
        return self.w("model.embed_tokens.weight" if self.cfg.tie_word_embeddings else "lm_head.weight")

    def attention(self, layer, h, cos, sin, cache, start, routers):
        cfg, p = self.cfg, f"model.layers.{layer}.self_attention."
        B, T, d = h.shape
        H, D, k = cfg.num_kv_heads, cfg.head_dim, cfg.top_k
        flat = h.reshape(B * T, d)
        router_logits = F.linear(flat, self.w(p + "experts.router.layer.weight"))
        routers.append(router_logits)
        groups = ExpertGroups(router_logits, k, cfg.num_experts)
        q_sorted = groups.products(flat[groups.token], self.w(p + "experts.input_linear.weight"))
        q = q_sorted[torch.argsort(groups.order)].reshape(B, T, k * H, D)  # slot-major heads (P3)
        kv = F.linear(flat, self.w(p + "kv_proj.weight")).reshape(B, T, 2, H, D)  # K then V (P8)
        q, keys, values = rope(q, cos, sin), rope(kv[:, :, 0], cos, sin), kv[:, :, 1]
        if cache is not None:
            cache.k[layer, :, start:start + T] = keys
            cache.v[layer, :, start:start + T] = values
            keys, values = cache.k[layer, :, :start + T], cache.v[layer, :, :start + T]
        S = keys.shape[1]
        # Query head s*H + j attends with KV head j (tile mapping, P1), so the k slots' queries of
        # KV head j are rows of one product with that head's keys: [B, H, k*T, D] x [B, H, D, S].
        qh = q.reshape(B, T, k, H, D).permute(0, 3, 2, 1, 4).reshape(B, H, k * T, D)
        kh, vh = keys.permute(0, 2, 1, 3), values.permute(0, 2, 1, 3)  # [B, H, S, D]
        scores = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(D)  # [B, H, k*T, S]
        if T > 1:
            allowed = torch.arange(S)[None, :] <= torch.arange(start, start + T)[:, None]
            scores = scores.masked_fill(~allowed.repeat(k, 1), float("-inf"))
        probs = torch.softmax(upcast(scores), dim=-1).to(scores.dtype)
        heads = torch.matmul(probs, vh).reshape(B, H, k, T, D)
        per_slot = heads.permute(0, 3, 2, 1, 4).reshape(B * T * k, H * D)  # (token, slot) rows
        out = groups.products(per_slot[groups.order], self.w(p + "experts.output_linear.weight"))
        y = groups.combine(out, B * T) + self.w(p + "experts.bias")      # bias once, after the sum (P7)
        return y.reshape(B, T, d)

    def mlp(self, layer, h, routers):
        cfg, p = self.cfg, f"model.layers.{layer}.mlp."
        B, T, d = h.shape
        flat = h.reshape(B * T, d)
        router_logits = F.linear(flat, self.w(p + "router.layer.weight"))
        routers.append(router_logits)
        groups = ExpertGroups(router_logits, cfg.top_k, cfg.num_experts)
        u = groups.products(flat[groups.token], self.w(p + "input_linear.weight"))
        z = F.silu(u[:, :cfg.intermediate_size]) * u[:, cfg.intermediate_size:]  # SiLU half first (P6)
        out = groups.products(z, self.w(p + "output_linear.weight"))
        return (groups.combine(out, B * T) + self.w(p + "bias")).reshape(B, T, d)

    def forward(self, ids, cache=None, last_only=False):
        """ids [B, T] -> logits [B, T or 1, V], router logits (list of [B*T, E], MoA then MoE per layer)."""
        cfg = self.cfg
        B, T = ids.shape
        start = cache.length if cache is not None else 0
        dtype = self.head().dtype if not torch.is_autocast_cpu_enabled() else torch.get_autocast_cpu_dtype()
        cos, sin = ref.rope_cos_sin(torch.arange(start, start + T), cfg.head_dim, cfg.rope_theta, dtype)
        x = self.w("model.embed_tokens.weight")[ids]
        routers = []
        for layer in range(cfg.num_layers):
            p = f"model.layers.{layer}."
            x = x + self.attention(layer, rms_norm(x, self.w(p + "input_layernorm.weight"), ref.BLOCK_NORM_EPS),
                                   cos, sin, cache, start, routers)
            x = x + self.mlp(layer, rms_norm(x, self.w(p + "post_attention_layernorm.weight"), ref.BLOCK_NORM_EPS),
                             routers)
        if cache is not None:
            cache.length += T
        if last_only:
            x = x[:, -1:]
        return F.linear(rms_norm(x, self.w("model.norm.weight"), cfg.rms_norm_eps), self.head()), routers


def training_loss(model, ids, labels):
    """CE + AUX_COEF * sum L_b + Z_COEF * sum L_z over every router (spec 2.3, as jetmoe's backward)."""
    logits, routers = model(ids)
    V, E, k = model.cfg.vocab_size, model.cfg.num_experts, model.cfg.top_k
    ce = F.cross_entropy(logits.float().reshape(-1, V), labels.reshape(-1))
    balance = z = 0.0
    for r in routers:
        r = r.float()
        f = torch.bincount(torch.topk(r, k, dim=-1).indices.reshape(-1), minlength=E).float() / (r.shape[0] * k)
        balance = balance + E * (f * torch.softmax(r, dim=-1).mean(0)).sum()
        z = z + (torch.logsumexp(r, dim=-1) ** 2).mean()
    return ce + AUX_COEF * balance + Z_COEF * z


# ----------------------------------------------------------------------------------------------
# Checks against the reference
# ----------------------------------------------------------------------------------------------

def check_against_reference(cfg, weights, dtype, ids, what):
    """Prompt logits and cached decoding of the peer vs jetmoe_ref (same dtype); returns max |diff|."""
    reference = ref.JetMoeReference(cfg, weights, dtype=dtype)
    peer = PeerJetMoe(cfg, weights, dtype)
    want = reference.forward(ids).logits
    with torch.inference_mode():
        got, _ = peer(ids[None])
        cache = KVCache(cfg, 1, ids.numel(), dtype)
        steps = [peer(ids[None, :3], cache)[0][0]] + [peer(ids[None, t:t + 1], cache)[0][0] for t in range(3, ids.numel())]
    diff = max(float((got[0] - want).abs().max()), float((torch.cat(steps) - want).abs().max()))
    print(f"check: peer vs reference on {what}: max |logit diff| {diff:.2e}", file=sys.stderr)
    return diff


def run_checks(cfg, weights):
    for case in ("top2_of_4_f32", "e8_odd_f32", "untied_f32"):
        folder = os.path.join(REPO, "tests", "fixtures", "ref", case)
        c, tensors = ref.load_checkpoint(folder)
        w = {n: torch.from_numpy(v) for n, (_, v) in tensors.items()}
        ids = torch.from_numpy(np.load(os.path.join(folder, "input_ids.npy")).astype(np.int64))
        if check_against_reference(c, w, torch.float64, ids, f"fixture {case} (float64)") > 1e-9:
            raise SystemExit(f"pytorch_peer: the peer model disagrees with the reference on {case}")
    ids = torch.tensor([cfg.bos_token_id] + [(37 * i + 11) % cfg.vocab_size for i in range(7)])
    if check_against_reference(cfg, weights, torch.float32, ids, "the benchmarked checkpoint (float32)") > 1e-2:
        raise SystemExit("pytorch_peer: the peer model disagrees with the reference on the checkpoint")


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------

def timed(fn, reps):
    fn()  # warm-up
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def stats(name, tokens, seconds):
    rates = [tokens / s for s in seconds]
    mean = sum(rates) / len(rates)
    std = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)) if len(rates) > 1 else 0.0
    print(f"pytorch: {name}: {mean:.2f} tokens/s", file=sys.stderr, flush=True)
    return {"tokens": tokens, "tokens_per_s": rates, "mean": mean, "std": std}


def time_inference(cfg, weights, dtype, args, gen):
    model = PeerJetMoe(cfg, weights, dtype)
    prompt = torch.randint(0, cfg.vocab_size, (1, args.n_prompt), generator=gen)
    generated = torch.randint(0, cfg.vocab_size, (args.n_gen,), generator=gen)

    def prefill():
        with torch.inference_mode():
            model(prompt, KVCache(cfg, 1, args.n_prompt, dtype), last_only=True)

    def decode():
        with torch.inference_mode():
            cache = KVCache(cfg, 1, args.n_gen, dtype)
            for t in generated.tolist():
                model(torch.tensor([[t]]), cache, last_only=True)

    name = "fp32" if dtype == torch.float32 else "bf16"
    return {"prefill": stats(f"{name} prefill", args.n_prompt, timed(prefill, args.reps)),
            "decode": stats(f"{name} decode", args.n_gen, timed(decode, args.reps))}


def time_training(cfg, weights, precision, args, gen):
    model = PeerJetMoe(cfg, weights, torch.float32)  # fp32 masters; bf16 runs under autocast
    decay, no_decay = [], []
    for p in model.params.values():
        p.requires_grad_(True)
        (decay if p.dim() >= 2 else no_decay).append(p)  # matrices and the embedding decay; norms, biases not
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS)
    B, T = args.train_batch, args.train_len
    losses = []

    def step():
        window = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=gen)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = training_loss(model, window[:, :T], window[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        losses.append(float(loss))

    result = stats(f"{precision} train", B * T, timed(step, args.reps))
    result.update({"loss_first": losses[0], "loss_last": losses[-1]})
    return result


def gemm_probe(dtype):
    a, b = torch.randn(512, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
    seconds = min(timed(lambda: a @ b, 3))
    return 2 * 512 * 2048 * 2048 / seconds / 1e9


def loaded_blas():
    with open("/proc/self/maps") as maps:
        libs = sorted({line.split()[-1] for line in maps if "blas" in line.split()[-1]})
    return ", ".join(os.path.realpath(lib) for lib in libs) or "(none found)"


# ----------------------------------------------------------------------------------------------
# jetmoe
# ----------------------------------------------------------------------------------------------

def run_jetmoe(args):
    cmd = [args.jetmoe, "bench", "-m", args.model, "-p", str(args.n_prompt), "-n", str(args.n_gen),
           "-t", str(args.threads), "-a", "f32,bf16", "-r", str(args.reps), "--json"]
    if not args.skip_train:
        cmd += ["--train-batch", str(args.train_batch), "--train-len", str(args.train_len)]
    print("jetmoe: " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    report = json.loads(out)
    names = {"pp": "prefill", "tg": "decode", "train": "train"}
    results = {}
    for row in report["results"]:
        test = next(n for prefix, n in names.items() if row["test"].startswith(prefix))
        precision = "fp32" if row["activations"] == "f32" else "bf16"
        results.setdefault(precision, {})[test] = {"mean": row["mean_tokens_per_s"],
                                                   "std": row["stddev_tokens_per_s"],
                                                   "fraction_of_bound": row["fraction_of_bound"]}
    return results, report


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

TESTS = [("prefill", "prefill tok/s (pp{p})"), ("decode", "decode tok/s (tg{n})"), ("train", "train tok/s ({b}x{t})")]


def table(args, peer, jet):
    lines = ["| test | precision | PyTorch | jetmoe | jetmoe / PyTorch |", "| --- | --- | ---: | ---: | ---: |"]
    best = {}
    for test, label in TESTS:
        label = label.format(p=args.n_prompt, n=args.n_gen, b=args.train_batch, t=args.train_len)
        for precision in ("fp32", "bf16"):
            a = peer.get(precision, {}).get(test)
            b = jet.get(precision, {}).get(test)
            if a is None and b is None:
                continue
            cell = lambda r: f"{r['mean']:.2f} ± {r['std']:.2f}" if r else "-"  # noqa: E731
            ratio = f"{b['mean'] / a['mean']:.2f}x" if a and b else "-"
            lines.append(f"| {label} | {precision} | {cell(a)} | {cell(b)} | {ratio} |")
            for side, r in (("peer", a), ("jet", b)):
                if r and r["mean"] > best.get((test, side), 0):
                    best[(test, side)] = r["mean"]
        if (test, "peer") in best and (test, "jet") in best:
            lines.append(f"| {label} | best of each | {best[(test, 'peer')]:.2f} | {best[(test, 'jet')]:.2f} | "
                         f"**{best[(test, 'jet')] / best[(test, 'peer')]:.2f}x** |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", required=True, help="HF-layout checkpoint directory (e.g. from jetmoe init)")
    parser.add_argument("-p", "--n-prompt", type=int, default=128)
    parser.add_argument("-n", "--n-gen", type=int, default=32)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-len", type=int, default=128)
    parser.add_argument("-r", "--reps", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--jetmoe", default=os.path.join(REPO, "build", "cli", "jetmoe"))
    parser.add_argument("--skip-jetmoe", action="store_true", help="time only PyTorch")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--no-check", action="store_true", help="skip the check against the reference")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the markdown table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precisions = args.precisions.split(",")

    # jetmoe first, in its own process: it has exited (and freed its memory) before PyTorch loads.
    jet, jet_report = ({}, None) if args.skip_jetmoe else run_jetmoe(args)

    cfg, tensors = ref.load_checkpoint(args.model)
    weights = {n: torch.from_numpy(v) for n, (_, v) in tensors.items()}
    del tensors
    if not args.no_check:
        run_checks(cfg, weights)
    gen = torch.Generator().manual_seed(args.seed)
    peer = {}
    for precision in precisions:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        peer[precision] = time_inference(cfg, weights, dtype, args, gen)
    # Training updates the fp32 weights in place (no second 4-bytes-per-parameter copy), so it runs last.
    for precision in precisions if not args.skip_train else []:
        peer[precision]["train"] = time_training(cfg, weights, precision, args, gen)

    env = {"torch": torch.__version__, "threads": args.threads, "blas": loaded_blas(),
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
           "gemm_gflops_fp32": gemm_probe(torch.float32),
           "gemm_gflops_bf16": gemm_probe(torch.bfloat16)}
    if args.json:
        print(json.dumps({"args": vars(args), "pytorch_env": env, "pytorch": peer, "jetmoe": jet,
                          "jetmoe_report": jet_report}, indent=1))
        return
    print(f"model {args.model}, {args.threads} thread(s); PyTorch {env['torch']}, BLAS {env['blas']}"
          f"{' (OPENBLAS_CORETYPE=' + env['openblas_coretype'] + ')' if env['openblas_coretype'] else ''}, "
          f"OMP_WAIT_POLICY={env['omp_wait_policy'] or '(unset)'}; "
          f"PyTorch GEMM 512x2048x2048: {env['gemm_gflops_fp32']:.0f} GFLOP/s fp32, "
          f"{env['gemm_gflops_bf16']:.0f} bf16\n")
    print(table(args, peer, jet))


if __name__ == "__main__":
    main()
