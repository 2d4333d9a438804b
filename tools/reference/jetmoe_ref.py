"""Plain PyTorch reference of the JetMoE decoder, written from docs/jetmoe-spec.md (sections 1 and 7).

Readable on purpose: one function per step of the spec, no fused kernels, no batching tricks.
Weights are upcast exactly from their stored dtype (F32 / BF16 / F16) to the compute dtype,
float64 by default, so the reference itself contributes (almost) no rounding.

Contents, top to bottom:
  config       JetMoeConfig.from_dict / load_config   (HF-native keys, original and GPT-2 aliases)
  safetensors  read_safetensors / write_safetensors / write_sharded_safetensors / load_checkpoint
  model        JetMoeReference.forward(ids, cache) -> logits [T, V], router logits [L, 2, T, E]
  decoding     KVCache, greedy_generate, next_token_ce_loss

Run with Debian's interpreter: /usr/bin/python3 (torch 1.13 + numpy).
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

# Spec P9: HF builds both per-block RMSNorms with the class default eps; only the final norm
# reads rms_norm_eps from the config.
BLOCK_NORM_EPS = 1e-6


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------

def _first_present(raw: dict, names: List[str]):
    for name in names:
        if name in raw and raw[name] is not None:
            return raw[name]
    return None


@dataclass
class JetMoeConfig:
    vocab_size: int
    hidden_size: int            # d
    num_layers: int             # L
    num_kv_heads: int           # H: KV heads = query heads per attention expert
    head_dim: int               # D: kv_channels (NOT hidden_size / num_attention_heads, spec P2)
    num_experts: int            # E, same for MoA and MoE
    top_k: int                  # k
    intermediate_size: int      # F, per MLP expert
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6  # final norm only (P9); HF JetMoeConfig default
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 4096
    bos_token_id: int = 1
    eos_token_id: int = 2

    # (field, accepted spellings) -- spec P12: HF-native first, then original / GPT-2 style.
    SIZE_KEYS = [
        ("vocab_size", ["vocab_size"]),
        ("hidden_size", ["hidden_size", "n_embd"]),
        ("num_layers", ["num_hidden_layers", "num_layers", "n_layer"]),
        ("num_kv_heads", ["num_key_value_heads"]),
        ("head_dim", ["kv_channels", "head_dim"]),
        ("num_experts", ["num_local_experts", "moe_num_experts"]),
        ("top_k", ["num_experts_per_tok", "moe_top_k"]),
        ("intermediate_size", ["intermediate_size", "ffn_hidden_size"]),
    ]

    @staticmethod
    def from_dict(raw: dict, source: str = "config.json") -> "JetMoeConfig":
        sizes = {}
        for name, keys in JetMoeConfig.SIZE_KEYS:
            value = _first_present(raw, keys)
            if value is None:
                raise ValueError(f"{source}: cannot determine {name} (none of {keys} present)")
            sizes[name] = int(value)
        theta = _first_present(raw, ["rope_theta"])
        if theta is None and isinstance(raw.get("rope_parameters"), dict):
            theta = raw["rope_parameters"].get("rope_theta")
        eps = _first_present(raw, ["rms_norm_eps", "layer_norm_epsilon"])
        cfg = JetMoeConfig(
            **sizes,
            rope_theta=float(theta) if theta is not None else 10000.0,
            rms_norm_eps=float(eps) if eps is not None else 1e-6,
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
            max_position_embeddings=int(_first_present(raw, ["max_position_embeddings", "n_positions"]) or 4096),
            bos_token_id=int(raw.get("bos_token_id", 1)),
            eos_token_id=int(raw.get("eos_token_id", 2)),
        )
        cfg.validate(source)
        return cfg

    def validate(self, source: str) -> None:
        for name, _ in self.SIZE_KEYS:
            if getattr(self, name) <= 0:
                raise ValueError(f"{source}: {name} must be positive, got {getattr(self, name)}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"{source}: top_k {self.top_k} not in 1..{self.num_experts}")
        if self.head_dim % 2:
            raise ValueError(f"{source}: rotate-half RoPE needs an even head dim, got {self.head_dim}")

    def to_hf_dict(self, torch_dtype: str = "float32") -> dict:
        """HF-native config.json content (model_type jetmoe)."""
        return {
            "activation_function": "silu",
            "architectures": ["JetMoeForCausalLM"],
            "attention_dropout": 0.0,
            "aux_loss_coef": 0.01,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "kv_channels": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "model_type": "jetmoe",
            "num_experts_per_tok": self.top_k,
            "num_hidden_layers": self.num_layers,
            "num_key_value_heads": self.num_kv_heads,
            "num_local_experts": self.num_experts,
            "output_router_logits": False,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": torch_dtype,
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }

    def expected_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Every tensor the checkpoint must hold (spec 1.7), HF names -> shape."""
        d, E, HD, F, V = self.hidden_size, self.num_experts, self.num_kv_heads * self.head_dim, \
            self.intermediate_size, self.vocab_size
        shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
        for i in range(self.num_layers):
            p = f"model.layers.{i}."
            shapes.update({
                p + "input_layernorm.weight": (d,),
                p + "self_attention.experts.router.layer.weight": (E, d),
                p + "self_attention.experts.input_linear.weight": (E, HD, d),
                p + "self_attention.experts.output_linear.weight": (E, d, HD),
                p + "self_attention.experts.bias": (d,),
                p + "self_attention.kv_proj.weight": (2 * HD, d),
                p + "post_attention_layernorm.weight": (d,),
                p + "mlp.router.layer.weight": (E, d),
                p + "mlp.input_linear.weight": (E, 2 * F, d),
                p + "mlp.output_linear.weight": (E, d, F),
                p + "mlp.bias": (d,),
            })
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (V, d)
        return shapes


def load_config(path: str) -> JetMoeConfig:
    with open(path) as f:
        return JetMoeConfig.from_dict(json.load(f), source=path)


# ----------------------------------------------------------------------------------------------
# Safetensors: 8-byte little-endian header length, JSON header, raw little-endian bytes.
# ----------------------------------------------------------------------------------------------

_ELEMENT_SIZE = {"F32": 4, "BF16": 2, "F16": 2}


def _decode(raw: bytes, dtype: str, shape: List[int]) -> np.ndarray:
    """Stored bytes -> float32 array. All three formats are exactly representable in float32."""
    if dtype == "F32":
        values = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        # bf16 is the top half of a float32: shift the 16 bits into place.
        values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise ValueError(f"unsupported dtype {dtype}")
    return values.reshape(shape).copy()


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Rounds float values to the nearest value of `dtype` (ties to even); returns float32."""
    values = np.asarray(values, dtype=np.float32)
    if dtype == "F32":
        return values.copy()
    if dtype == "F16":
        return values.astype("<f2").astype(np.float32)
    if dtype == "BF16":
        return _decode(_bf16_bits(values).tobytes(), "BF16", list(values.shape))
    raise ValueError(f"unsupported dtype {dtype}")


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ValueError("bf16 encoder: non-finite value")
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest, ties to even
    return rounded.astype("<u2")


def _encode(values: np.ndarray, dtype: str) -> bytes:
    values = np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    if dtype == "F16":
        encoded = values.astype("<f2")
        if not np.array_equal(encoded.astype(np.float32), values):
            raise ValueError("F16 encoder: value not exactly representable; round_to_dtype first")
        return encoded.tobytes()
    if dtype == "BF16":
        bits = _bf16_bits(values)
        if not np.array_equal(_decode(bits.tobytes(), "BF16", list(values.shape)), values):
            raise ValueError("BF16 encoder: value not exactly representable; round_to_dtype first")
        return bits.tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def read_safetensors(path: str) -> Dict[str, Tuple[str, np.ndarray]]:
    """name -> (stored dtype, float32 array)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    header_len = struct.unpack("<Q", blob[:8])[0]
    if 8 + header_len > len(blob):
        raise ValueError(f"{path}: header length {header_len} exceeds file size {len(blob)}")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = blob[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ELEMENT_SIZE:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        if end > len(data) or end - begin != _ELEMENT_SIZE[dtype] * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor '{name}' byte range [{begin}, {end}) does not fit its shape/file")
        tensors[name] = (dtype, _decode(data[begin:end], dtype, shape))
    return tensors


def write_safetensors(path: str, tensors: Dict[str, Tuple[str, np.ndarray]]) -> None:
    """tensors: name -> (dtype, values already representable in dtype). Order is kept."""
    header = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name, (dtype, values) in tensors.items():
        raw = _encode(values, dtype)
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for raw in chunks:
            f.write(raw)


def write_sharded_safetensors(folder: str, tensors: Dict[str, Tuple[str, np.ndarray]], num_shards: int) -> List[str]:
    """Splits tensors (in order) into num_shards files plus model.safetensors.index.json."""
    names = list(tensors)
    bounds = np.linspace(0, len(names), num_shards + 1).round().astype(int)
    weight_map, files, total = {}, [], 0
    for s in range(num_shards):
        file = f"model-{s + 1:05d}-of-{num_shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[bounds[s]:bounds[s + 1]]}
        write_safetensors(os.path.join(folder, file), part)
        for n, (dtype, values) in part.items():
            weight_map[n] = file
            total += _ELEMENT_SIZE[dtype] * values.size
        files.append(file)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")
    return files


def load_checkpoint(folder: str) -> Tuple[JetMoeConfig, Dict[str, Tuple[str, np.ndarray]]]:
    """config.json + model.safetensors, or the shards named by model.safetensors.index.json."""
    config = load_config(os.path.join(folder, "config.json"))
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for file in sorted(set(weight_map.values())):
            for name, value in read_safetensors(os.path.join(folder, file)).items():
                if weight_map.get(name) != file:
                    raise ValueError(f"{file}: tensor '{name}' is not mapped to this shard by the index")
                tensors[name] = value
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError(f"{index_path}: tensors missing from their shards: {sorted(missing)}")
    else:
        tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    return config, tensors


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """y = x / sqrt(mean(x^2) + eps) * weight; no mean subtraction, no bias (spec 1.2)."""
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


def route(h: torch.Tensor, router_weight: torch.Tensor, top_k: int):
    """Spec 1.3. h [T, d] -> logits [T, E], experts [T, k] (descending logit), gates [T, k].

    Gates are the softmax over the k selected logits only (P4)."""
    logits = h @ router_weight.T
    top_logits, experts = torch.topk(logits, top_k, dim=-1, largest=True, sorted=True)
    gates = torch.softmax(top_logits, dim=-1)
    return logits, experts, gates


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """Rotate-half tables over the full head dim (spec 1.6): cos/sin [T, D/2]."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * i / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """v [T, heads, D]: out[i] = v[i] cos - v[i+D/2] sin, out[i+D/2] = v[i+D/2] cos + v[i] sin."""
    half = v.shape[-1] // 2
    lo, hi = v[..., :half], v[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.cat([lo * c - hi * s, hi * c + lo * s], dim=-1)


def per_token_expert_matmul(stacked: torch.Tensor, experts: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """stacked [E, out, in], experts [T], x [T, in] -> y[t] = stacked[experts[t]] @ x[t]  ([T, out])."""
    return torch.einsum("toi,ti->to", stacked[experts], x)


@dataclass
class KVCache:
    """Post-RoPE K and V of the H KV heads only, per layer: [S, H, D] (spec 1.6)."""
    keys: List[Optional[torch.Tensor]] = field(default_factory=list)
    values: List[Optional[torch.Tensor]] = field(default_factory=list)

    @staticmethod
    def empty(num_layers: int) -> "KVCache":
        return KVCache([None] * num_layers, [None] * num_layers)

    def length(self) -> int:
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[0]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=0)
            v = torch.cat([self.values[layer], v], dim=0)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@dataclass
class ForwardOutput:
    logits: torch.Tensor         # [T, V]
    router_logits: torch.Tensor  # [L, 2, T, E]; [:, 0] attention (MoA) router, [:, 1] MLP (MoE) router


class JetMoeReference:
    """JetMoE decoder on one sequence. weights: HF name -> tensor (any float dtype)."""

    def __init__(self, config: JetMoeConfig, weights: Dict[str, torch.Tensor],
                 dtype: torch.dtype = torch.float64, block_norm_eps: float = BLOCK_NORM_EPS,
                 final_norm_eps: Optional[float] = None):
        expected = config.expected_shapes()
        unexpected = sorted(set(weights) - set(expected) - ({"lm_head.weight"} if config.tie_word_embeddings else set()))
        if unexpected:
            raise ValueError(f"unexpected tensors in checkpoint: {unexpected}")
        for name, shape in expected.items():
            if name not in weights:
                raise ValueError(f"checkpoint lacks tensor '{name}'")
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"tensor '{name}' has shape {tuple(weights[name].shape)}, expected {shape}")
        self.config = config
        self.dtype = dtype
        # Exact upcast: F32/BF16/F16 values are all representable in float32/float64. Tensors
        # that already have `dtype` are used as they are (keeps autograd leaves intact).
        self.w = {n: (t if t.dtype == dtype else t.to(dtype)) for n, t in weights.items() if n in expected}
        self.block_norm_eps = block_norm_eps
        self.final_norm_eps = config.rms_norm_eps if final_norm_eps is None else final_norm_eps

    @staticmethod
    def from_checkpoint(folder: str, dtype: torch.dtype = torch.float64, **kwargs) -> "JetMoeReference":
        config, tensors = load_checkpoint(folder)
        weights = {n: torch.from_numpy(v) for n, (_, v) in tensors.items()}
        return JetMoeReference(config, weights, dtype=dtype, **kwargs)

    def head_weight(self) -> torch.Tensor:
        # Tied head (P11): logits use the embedding matrix; untied: lm_head.weight [V, d].
        return self.w["model.embed_tokens.weight"] if self.config.tie_word_embeddings else self.w["lm_head.weight"]

    # -- sub-layers ---------------------------------------------------------------------------

    def kv_head_of_query_head(self, query_heads: torch.Tensor) -> torch.Tensor:
        """KV tile mapping (P1): slot-major query head q attends with KV head q mod H, so within
        each slot expert head j pairs with shared KV head j (NOT the GQA interleave q div k)."""
        return query_heads % self.config.num_kv_heads

    def mixture_of_attention(self, layer: int, h: torch.Tensor, positions: torch.Tensor,
                             cache: Optional[KVCache]):
        """Spec 1.4. h [T, d] (normed) -> y [T, d], router logits [T, E]."""
        cfg, p = self.config, f"model.layers.{layer}.self_attention."
        T, H, D, k = h.shape[0], cfg.num_kv_heads, cfg.head_dim, cfg.top_k
        router_logits, experts, gates = route(h, self.w[p + "experts.router.layer.weight"], k)

        # Shared K/V: first H*D rows of kv_proj are K, the last H*D rows are V (P8).
        kv = h @ self.w[p + "kv_proj.weight"].T
        keys, values = kv[:, :H * D].reshape(T, H, D), kv[:, H * D:].reshape(T, H, D)

        # Queries of every slot, stacked slot-major: query head s*H + j (P3).
        wq = self.w[p + "experts.input_linear.weight"]
        queries = torch.cat([per_token_expert_matmul(wq, experts[:, s], h).reshape(T, H, D)
                             for s in range(k)], dim=1)  # [T, k*H, D]

        cos, sin = rope_cos_sin(positions, D, cfg.rope_theta, self.dtype)
        queries, keys = apply_rope(queries, cos, sin), apply_rope(keys, cos, sin)  # K rotated once (P10)
        if cache is not None:
            keys, values = cache.append(layer, keys, values)
        S = keys.shape[0]

        kv_head = self.kv_head_of_query_head(torch.arange(k * H))
        keys_rep, values_rep = keys[:, kv_head], values[:, kv_head]  # [S, k*H, D]
        scores = torch.einsum("tqd,sqd->qts", queries, keys_rep) / math.sqrt(D)
        allowed = torch.arange(S)[None, :] <= positions[:, None]  # causal [T, S]; key s sits at position s
        scores = scores.masked_fill(~allowed[None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        heads_out = torch.einsum("qts,sqd->tqd", probs, values_rep)  # [T, k*H, D]

        # Slot s: heads s*H .. s*H+H-1 -> Wo[e_s], scaled by gate g_s; bias once after the sum (P7).
        wo = self.w[p + "experts.output_linear.weight"]
        y = torch.zeros_like(h)
        for s in range(k):
            a_s = heads_out[:, s * H:(s + 1) * H].reshape(T, H * D)
            y = y + gates[:, s:s + 1] * per_token_expert_matmul(wo, experts[:, s], a_s)
        return y + self.w[p + "experts.bias"], router_logits

    def mixture_of_mlp(self, layer: int, h: torch.Tensor):
        """Spec 1.5. h [T, d] (normed) -> y [T, d], router logits [T, E]."""
        cfg, p = self.config, f"model.layers.{layer}.mlp."
        F = cfg.intermediate_size
        router_logits, experts, gates = route(h, self.w[p + "router.layer.weight"], cfg.top_k)
        y = torch.zeros_like(h)
        for s in range(cfg.top_k):
            u = per_token_expert_matmul(self.w[p + "input_linear.weight"], experts[:, s], h)  # [T, 2F]
            z = torch.nn.functional.silu(u[:, :F]) * u[:, F:]  # first half is the SiLU half (P6)
            o = per_token_expert_matmul(self.w[p + "output_linear.weight"], experts[:, s], z)
            y = y + gates[:, s:s + 1] * o
        return y + self.w[p + "bias"], router_logits

    # -- whole model --------------------------------------------------------------------------

    def forward(self, ids: torch.Tensor, cache: Optional[KVCache] = None) -> ForwardOutput:
        """ids [T] int64. With a cache, positions continue from the cache length."""
        ids = torch.as_tensor(ids, dtype=torch.int64).reshape(-1)
        if ids.numel() == 0:
            raise ValueError("forward: empty input")
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"forward: token id out of range [0, {self.config.vocab_size})")
        start = cache.length() if cache is not None else 0
        positions = torch.arange(start, start + ids.numel())

        x = self.w["model.embed_tokens.weight"][ids]  # no sqrt(d) scaling (P11)
        router_logits = []
        for layer in range(self.config.num_layers):
            p = f"model.layers.{layer}."
            attn_out, attn_router = self.mixture_of_attention(
                layer, rms_norm(x, self.w[p + "input_layernorm.weight"], self.block_norm_eps), positions, cache)
            x = x + attn_out
            mlp_out, mlp_router = self.mixture_of_mlp(
                layer, rms_norm(x, self.w[p + "post_attention_layernorm.weight"], self.block_norm_eps))
            x = x + mlp_out
            router_logits.append(torch.stack([attn_router, mlp_router]))
        x = rms_norm(x, self.w["model.norm.weight"], self.final_norm_eps)
        return ForwardOutput(logits=x @ self.head_weight().T, router_logits=torch.stack(router_logits))


# ----------------------------------------------------------------------------------------------
# Decoding and loss
# ----------------------------------------------------------------------------------------------

@dataclass
class Generation:
    tokens: torch.Tensor          # [N] int64
    step_logits: torch.Tensor     # [N, V]: logits each token was chosen from (step 0 = prompt's last)
    router_logits: List[torch.Tensor]  # per forward call (prompt, then one per fed-back token)


def greedy_generate(model: JetMoeReference, prompt: torch.Tensor, steps: int) -> Generation:
    """Greedy decoding with the KV cache; no EOS stop. argmax ties resolve to the lowest id."""
    cache = KVCache.empty(model.config.num_layers)
    out = model.forward(prompt, cache)
    routers, tokens, step_logits = [out.router_logits], [], []
    last = out.logits[-1]
    for step in range(steps):
        token = int(torch.argmax(last))
        tokens.append(token)
        step_logits.append(last)
        if step + 1 < steps:
            out = model.forward(torch.tensor([token]), cache)
            routers.append(out.router_logits)
            last = out.logits[-1]
    return Generation(torch.tensor(tokens, dtype=torch.int64), torch.stack(step_logits), routers)


def next_token_ce_loss(logits: torch.Tensor, ids: torch.Tensor) -> Optional[torch.Tensor]:
    """Mean cross-entropy of logits[t] against ids[t+1]; None for a one-token sequence."""
    if ids.numel() < 2:
        return None
    return torch.nn.functional.cross_entropy(logits[:-1], ids[1:].to(torch.int64), reduction="mean")
