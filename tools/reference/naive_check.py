"""Second, deliberately naive implementation used to cross-check jetmoe_ref.py on the shapes the
HF fixtures do not cover (H*D != d, k = 1, k = E, untied head, odd sizes, long prompts).

Token by token, head by head, in float64 numpy, with explicit loops and its own RoPE: it shares
only the checkpoint reader with jetmoe_ref.py. For every case in tests/fixtures/ref/ it recomputes
the prompt logits and router logits and compares them with the committed .npy files.

Usage: /usr/bin/python3 tools/reference/naive_check.py [fixtures/ref folder]
"""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jetmoe_ref as ref  # noqa: E402  (checkpoint reader only)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def norm(x, w, eps):
    return x / math.sqrt(float(np.dot(x, x)) / x.size + eps) * w


def rotate(v, pos, theta):
    D = v.size
    out = np.empty(D)
    for i in range(D // 2):
        angle = pos * theta ** (-2.0 * i / D)
        c, s = math.cos(angle), math.sin(angle)
        out[i] = v[i] * c - v[i + D // 2] * s
        out[i + D // 2] = v[i + D // 2] * c + v[i] * s
    return out


def top_k_gates(logits, k):
    order = sorted(range(logits.size), key=lambda e: -logits[e])[:k]
    exps = [math.exp(logits[e] - logits[order[0]]) for e in order]
    return order, [x / sum(exps) for x in exps]


def run(cfg, w, ids):
    H, D, k, F = cfg.num_kv_heads, cfg.head_dim, cfg.top_k, cfg.intermediate_size
    keys = [[[] for _ in range(H)] for _ in range(cfg.num_layers)]  # [layer][head] -> list of [D]
    values = [[[] for _ in range(H)] for _ in range(cfg.num_layers)]
    all_logits, all_routers = [], []
    for pos, token in enumerate(ids):
        x = w["model.embed_tokens.weight"][token].copy()
        routers = []
        for l in range(cfg.num_layers):
            p = f"model.layers.{l}."
            h = norm(x, w[p + "input_layernorm.weight"], 1e-6)
            r_att = w[p + "self_attention.experts.router.layer.weight"] @ h
            experts, gates = top_k_gates(r_att, k)
            kv = w[p + "self_attention.kv_proj.weight"] @ h
            for j in range(H):
                keys[l][j].append(rotate(kv[j * D:(j + 1) * D], pos, cfg.rope_theta))
                values[l][j].append(kv[H * D + j * D:H * D + (j + 1) * D])
            y = w[p + "self_attention.experts.bias"].copy()
            for e, g in zip(experts, gates):
                q_all = w[p + "self_attention.experts.input_linear.weight"][e] @ h
                a = np.zeros(H * D)
                for j in range(H):  # expert head j uses shared KV head j
                    q = rotate(q_all[j * D:(j + 1) * D], pos, cfg.rope_theta)
                    scores = np.array([np.dot(q, kj) / math.sqrt(D) for kj in keys[l][j]])
                    probs = np.exp(scores - scores.max())
                    probs /= probs.sum()
                    a[j * D:(j + 1) * D] = sum(pr * vj for pr, vj in zip(probs, values[l][j]))
                y += g * (w[p + "self_attention.experts.output_linear.weight"][e] @ a)
            x = x + y
            h = norm(x, w[p + "post_attention_layernorm.weight"], 1e-6)
            r_mlp = w[p + "mlp.router.layer.weight"] @ h
            experts, gates = top_k_gates(r_mlp, k)
            y = w[p + "mlp.bias"].copy()
            for e, g in zip(experts, gates):
                u = w[p + "mlp.input_linear.weight"][e] @ h
                z = u[:F] / (1.0 + np.exp(-u[:F])) * u[F:]
                y += g * (w[p + "mlp.output_linear.weight"][e] @ z)
            x = x + y
            routers.append([r_att, r_mlp])
        head = w["model.embed_tokens.weight"] if cfg.tie_word_embeddings else w["lm_head.weight"]
        all_logits.append(head @ norm(x, w["model.norm.weight"], cfg.rms_norm_eps))
        all_routers.append(routers)
    return np.array(all_logits), np.array(all_routers).transpose(1, 2, 0, 3)  # [T,V], [L,2,T,E]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "ref")
    worst = 0.0
    for case in sorted(os.listdir(root)):
        folder = os.path.join(root, case)
        if not os.path.exists(os.path.join(folder, "case.json")):
            continue
        cfg, tensors = ref.load_checkpoint(folder)
        w = {n: v.astype(np.float64) for n, (_, v) in tensors.items()}
        logits, routers = run(cfg, w, np.load(os.path.join(folder, "input_ids.npy")).tolist())
        d_logits = float(np.abs(logits - np.load(os.path.join(folder, "logits.npy"))).max())
        d_router = float(np.abs(routers - np.load(os.path.join(folder, "router_logits.npy"))).max())
        worst = max(worst, d_logits, d_router)
        print(f"{case:14s} logits {d_logits:.2e}  router logits {d_router:.2e}")
    ok = worst <= 1e-5  # files are float32 roundings of float64 results: expect ~1e-6 at most
    print("ALL OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
