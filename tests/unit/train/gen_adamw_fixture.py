#!/usr/bin/env python3
"""Writes adamw_torch_fixture.json: a few steps of torch.optim.AdamW on two small tensors, one
with weight decay (a matrix) and one without (a norm-like vector), with a different learning
rate per step. Run with /usr/bin/python3 (torch 1.13); the C++ test replays the same steps."""
import json
import torch

torch.manual_seed(0)
matrix = torch.randn(3, 4, dtype=torch.float32)
vector = torch.randn(4, dtype=torch.float32)
initial = {"matrix": matrix.flatten().tolist(), "vector": vector.flatten().tolist()}
p_matrix = torch.nn.Parameter(matrix.clone())
p_vector = torch.nn.Parameter(vector.clone())
betas, eps, weight_decay = (0.9, 0.95), 1e-8, 0.1
opt = torch.optim.AdamW([{"params": [p_matrix], "weight_decay": weight_decay},
                         {"params": [p_vector], "weight_decay": 0.0}],
                        lr=1e-2, betas=betas, eps=eps, foreach=False)
steps = []
for lr in [1e-2, 5e-2, 3e-2, 1e-3, 2e-2]:
    grads = {"matrix": torch.randn(3, 4), "vector": torch.randn(4) * 0.1}
    for group in opt.param_groups:
        group["lr"] = lr
    p_matrix.grad = grads["matrix"].clone()
    p_vector.grad = grads["vector"].clone()
    opt.step()
    steps.append({"lr": lr,
                  "grads": {k: v.flatten().tolist() for k, v in grads.items()},
                  "expected": {"matrix": p_matrix.detach().flatten().tolist(),
                               "vector": p_vector.detach().flatten().tolist()}})
fixture = {"torch_version": torch.__version__, "beta1": betas[0], "beta2": betas[1], "eps": eps,
           "weight_decay": weight_decay, "initial": initial, "steps": steps}
with open(__file__.replace("gen_adamw_fixture.py", "adamw_torch_fixture.json"), "w") as f:
    json.dump(fixture, f, indent=1)
