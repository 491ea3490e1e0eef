"""gearterm's own decoder: the transformer of a chat model, written like the math, batch 1.

One file for the families gearterm gears (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5, Qwen3,
Gemma 2 and 3, Phi-3, and the mixtures of experts Mixtral, Qwen2-MoE and Qwen3-MoE): they
differ in a few switches of `Shape`, not in structure. Every projection inside a decoder
layer, each expert's included, is an nn.Linear until the backend swaps it for a GearedLinear;
embeddings, norms, routers and the LM head stay at full precision.
transformers is the oracle the tests compare this file against, token for token.

Shapes: hidden states are [T, hidden] (T new positions); the KV cache of a layer is
[kv_heads, positions, head_dim], filled up to `pos + T` after a forward pass. `pos` is a
Python int for prompts and eager steps, or a one-element device tensor for what a CUDA graph
captures (the decode step, T = 1, and lossless mode's verify pass, T = k + 1): the cache is
written at pos.. and attention reads the whole cache, masked, so that nothing in the step
depends on a value on the host.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gearterm.kernels.decode_attention import MAX_QUERIES, decode_attention
from gearterm.kernels.entropy import entropy_varentropy
from gearterm.kernels.matmul import linear


@dataclass(frozen=True)
class Shape:
    """What one family's config says about the decoder's structure."""

    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    norm_eps: float
    activation: str  # "silu" or "gelu_tanh"
    attention_bias: bool = False  # q, k and v (Qwen2: yes); o never has one where this is set alone
    output_bias: bool = False  # o (Llama's attention_bias covers o too)
    mlp_bias: bool = False
    qk_norm: bool = False  # Qwen3, Gemma 3: RMSNorm over each head's q and k
    norm_plus_one: bool = False  # Gemma: weight + 1, computed in float32
    sandwich_norms: bool = False  # Gemma 2/3: norms after attention and MLP too
    embed_scale: float = 1.0  # Gemma: sqrt(hidden)
    attention_scale: float | None = None  # None: 1/sqrt(head_dim)
    attention_softcap: float | None = None  # Gemma 2
    final_softcap: float | None = None  # Gemma 2
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] = ()  # per layer: attends over the window only
    rotary_dim: int = 0  # leading dims of a head that rotate (Phi's partial rotary); 0 = all
    rotary_tiles: bool = False  # each head's q and k rows in rotary_order (the experiment QKV_EPILOGUE)
    tie_embeddings: bool = False
    max_positions: int = 2048
    # Mixture of experts: which layers route (an empty tuple: none), among how many experts
    num_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0  # Qwen2-MoE: an expert every token runs, gated
    normalize_top_k: bool = True  # the chosen experts' weights rescaled to sum to 1
    moe_layers: tuple[bool, ...] = ()

    def is_sliding(self, layer: int) -> bool:
        return bool(self.sliding_layers) and self.sliding_layers[layer] and self.sliding_window is not None


# Prompt positions a forward pass takes at a time: each chunk attends to the cache so far
# through a [chunk, positions] mask, and its projections are matrix products of this height.
PREFILL_CHUNK = 2048
# Prompt positions the LM head runs at a time where a prompt's entropies are read: a block of
# logits and the entropy's float32 scratch stay a few hundred MB on a 128k vocabulary.
HEAD_ROWS = 256


class RMSNorm(nn.Module):
    """x / rms(x) * weight, in float32 as every family computes it."""

    def __init__(self, dim: int, eps: float, plus_one: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim) if plus_one else torch.ones(dim))
        self.eps, self.plus_one = eps, plus_one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.plus_one:  # Gemma scales in float32, then casts
            return (h * (1.0 + self.weight.float())).to(x.dtype)
        if x.is_cuda and not torch.compiler.is_compiling():  # one kernel instead of eight;
            from gearterm.kernels.triton_rmsnorm import rms_norm  # compiled, inductor fuses the formula

            return rms_norm(x, self.weight, self.eps)
        return self.weight * h.to(x.dtype)  # Llama casts back, then scales


# Experiment (default off): GEARTERM_QKV_EPILOGUE=1 keeps each rotary pair of a head's q and k
# rows (dim d and its partner d + rotary_dim / 2) in one tile of 16 rows: dims 8t..8t+7, then their
# partners, for each t. A program of the gear GEMV computes 16 rows, so it can rotate q and k itself
# and write k and v into the cache (GearedLinear.rotated_into_cache): no rotary or cache-write
# kernel in the decode step. q and k are permuted alike, so their products are the same; the
# cache holds k in this order.
QKV_EPILOGUE = os.environ.get("GEARTERM_QKV_EPILOGUE", "") == "1"
ROTARY_TILE = 8


def tiles_rotary(rotary_dim: int) -> bool:
    """Whether the experiment asks for rotary tiles and a head's rotating dims split into whole tiles."""
    return QKV_EPILOGUE and rotary_dim % (2 * ROTARY_TILE) == 0


def rotary_order(s: Shape) -> torch.Tensor:
    """A head's dims in the tiled order: 8t..8t+7, then r/2 + 8t..r/2 + 8t + 7, for each t (r the
    rotary dims); the dims that do not rotate after them, as they were."""
    r = s.rotary_dim or s.head_dim
    first = torch.arange(r // 2).view(-1, ROTARY_TILE)
    return torch.cat([torch.stack([first, first + r // 2], 1).flatten(), torch.arange(r, s.head_dim)])


def tile_rotary(stacked: torch.Tensor, s: Shape) -> torch.Tensor:
    """q, k and v rows stacked ([q + 2 kv, ...], a weight or a bias), each head's q and k rows in
    rotary_order."""
    heads = s.num_heads + s.num_kv_heads
    qk = stacked[: heads * s.head_dim].unflatten(0, (heads, s.head_dim))
    return torch.cat([qk[:, rotary_order(s)].flatten(0, 1), stacked[heads * s.head_dim :]])


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, tiled: bool = False) -> torch.Tensor:
    """Rotary embedding on x [T, heads, dim]; cos and sin [T, rotary_dim] (halves repeated).
    `tiled`: x's dims in rotary_order (the result too), with the same arithmetic."""
    r = cos.shape[-1]
    x_rot, x_pass = x[..., :r], x[..., r:]
    half = r // 2
    if tiled:
        pairs = x_rot.unflatten(-1, (-1, 2, ROTARY_TILE))
        c, s = (t[:, None, :half].unflatten(-1, (-1, 1, ROTARY_TILE)) for t in (cos, sin))
        rotated = torch.cat((-pairs[..., 1:, :], pairs[..., :1, :]), dim=-2)
        out = (pairs * c + rotated * s).flatten(-3)
    else:
        rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
        out = x_rot * cos[:, None] + rotated * sin[:, None]
    return torch.cat((out, x_pass), dim=-1) if x_pass.numel() else out


class KVCache(nn.Module):
    """Keys and values of one layer for every position so far: [kv_heads, positions, head_dim]."""

    def __init__(self, kv_heads: int, positions: int, head_dim: int, dtype: torch.dtype, device):
        super().__init__()
        self.register_buffer("k", torch.zeros(kv_heads, positions, head_dim, dtype=dtype, device=device))
        self.register_buffer("v", torch.zeros(kv_heads, positions, head_dim, dtype=dtype, device=device))

    def write(self, k: torch.Tensor, v: torch.Tensor, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [T, kv_heads, head_dim] at positions pos.., and return every position so
        far, [kv_heads, pos + T, head_dim]."""
        end = pos + k.shape[0]
        self.k[:, pos:end] = k.transpose(0, 1)
        self.v[:, pos:end] = v.transpose(0, 1)
        return self.k[:, :end], self.v[:, :end]

    def write_at(self, k: torch.Tensor, v: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store T positions' k, v [T, kv_heads, head_dim] at device indices `at` [T]; return
        the whole cache."""
        self.k.index_copy_(1, at, k.transpose(0, 1))
        self.v.index_copy_(1, at, v.transpose(0, 1))
        return self.k, self.v


def attention_mask(pos: int | torch.Tensor, new: int, window: int | None, keys: int, device) -> torch.Tensor | None:
    """[new, keys] bool: query pos+i sees keys 0..pos+i (within `window` of it, if set). None
    where one new position at a host-known index sees every key so far: no mask at all lets
    SDPA take its fused path instead of the masked one."""
    if not isinstance(pos, torch.Tensor) and new == 1 and (window is None or pos < window):
        return None
    q = torch.arange(new, device=device)[:, None] + pos
    k = torch.arange(keys, device=device)[None, :]
    allowed = k <= q
    if window is not None:
        allowed &= q - k < window
    return allowed


def reads_filled_only(x: torch.Tensor, s: Shape) -> bool:
    """Whether a captured pass's attention goes through gearterm.kernels.decode_attention,
    which reads the position from the device and needs no mask (CUDA, no score soft-capping,
    a step or a verify pass: few positions)."""
    return x.is_cuda and s.attention_softcap is None and x.shape[0] <= MAX_QUERIES


class Attention(nn.Module):
    def __init__(self, s: Shape, layer: int):
        super().__init__()
        self.s, self.sliding = s, s.is_sliding(layer)
        q, kv = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        # q, k and v stacked: one taller matrix-vector product a step instead of three. Each
        # row's groups are quantized on their own, so stacking changes no gear's codes.
        self.qkv = nn.Linear(s.hidden_size, q + 2 * kv, bias=s.attention_bias)
        self.o = nn.Linear(q, s.hidden_size, bias=s.output_bias)
        self.sizes = [q, kv, kv]
        if s.qk_norm:
            self.q_norm = RMSNorm(s.head_dim, s.norm_eps, s.norm_plus_one)
            self.k_norm = RMSNorm(s.head_dim, s.norm_eps, s.norm_plus_one)
        self.scale = s.attention_scale or 1 / math.sqrt(s.head_dim)

    def forward(self, x, cos, sin, visible, cache: KVCache, pos: int | torch.Tensor) -> torch.Tensor:
        """`visible`: attention_mask for this layer's window (None: every key so far)."""
        s, T = self.s, x.shape[0]
        q = self._rotated_into_cache(x, cos, sin, cache, pos)
        if q is not None:  # the GEMV rotated q and k and wrote k and v
            return self._attend_filled(q.view(T, s.num_heads, s.head_dim), cache.k, cache.v, pos)
        q, k, v = self.qkv(x).split(self.sizes, dim=-1)
        q = q.view(T, s.num_heads, s.head_dim)
        k = k.view(T, s.num_kv_heads, s.head_dim)
        v = v.view(T, s.num_kv_heads, s.head_dim)
        if s.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rotate(q, cos, sin, s.rotary_tiles), rotate(k, cos, sin, s.rotary_tiles)
        if isinstance(pos, torch.Tensor):  # captured: pos holds the index of each new position
            keys, values = cache.write_at(k, v, pos)
            if reads_filled_only(x, s):
                return self._attend_filled(q, keys, values, pos)
        else:
            keys, values = cache.write(k, v, pos)
        out = self.attend(q.transpose(0, 1), keys, values, visible)  # [heads, T, head_dim]
        return self.o(out.transpose(0, 1).reshape(T, -1))

    def _attend_filled(self, q, keys, values, pos: torch.Tensor) -> torch.Tensor:
        """o of the attention of q [T, heads, head_dim] (a step, or a verify pass's few positions):
        grouped heads read in place, in slices of the cache up to the last position
        (gearterm.kernels.decode_attention)."""
        window = self.s.sliding_window if self.sliding else None
        return self.o(decode_attention(q, keys, values, pos[:1], window, self.scale).reshape(q.shape[0], -1))

    def _rotated_into_cache(self, x, cos, sin, cache: KVCache, pos: int | torch.Tensor) -> torch.Tensor | None:
        """The experiment QKV_EPILOGUE's captured step: q [1, q rows] from the gear's GEMV, which
        rotates q and k and writes k and v into the cache itself; None where it does not run (the
        experiment off, a prompt, q/k norms between the GEMV and the rotation, cuBLAS in the high
        gear, a CPU)."""
        s = self.s
        step = isinstance(pos, torch.Tensor) and x.shape[0] == 1 and reads_filled_only(x, s)
        if not (step and s.rotary_tiles and not s.qk_norm and hasattr(self.qkv, "rotated_into_cache")):
            return None
        return self.qkv.rotated_into_cache(x, cos[0], sin[0], pos, cache.k, cache.v, self.sizes[0], cos.shape[-1])

    def attend(self, q, keys, values, mask) -> torch.Tensor:
        groups = self.s.num_heads // self.s.num_kv_heads
        if self.s.attention_softcap is None:
            if q.is_cuda and q.shape[1] > 1:
                # A prompt's chunk on a GPU: SDPA's memory-efficient kernel takes a mask but not
                # grouped heads, and only 4-d inputs; otherwise it falls back to the math path,
                # which holds every score in float32 (8.6 GB a layer for 2,048 queries on 32k keys).
                keys, values = keys.repeat_interleave(groups, 0), values.repeat_interleave(groups, 0)
                return F.scaled_dot_product_attention(q[None], keys[None], values[None], attn_mask=mask, scale=self.scale)[0]
            return F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, scale=self.scale, enable_gqa=groups > 1
            )
        # Gemma 2 caps the scores before the softmax, which SDPA cannot do.
        keys, values = keys.repeat_interleave(groups, 0), values.repeat_interleave(groups, 0)
        scores = (q @ keys.transpose(-1, -2)) * self.scale
        cap = self.s.attention_softcap
        scores = torch.tanh(scores / cap) * cap
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ values


# The MLP's gate and up rows are stacked in one matrix in alternating tiles of GATE_TILE rows:
# gate rows 0-7, up rows 0-7, gate rows 8-15, ... A program of the gear GEMV computes 16 rows, so
# it holds each gate row with its up row and writes SiLU(gate) * up itself
# (kernels.triton_gemv_mma); the down projection's GEMV adds the residual (GearedLinear.plus):
# a decode step's MLP is its two GEMVs.
GATE_TILE = 8


def tiles_gate_up(width: int) -> bool:
    """Whether an MLP of this width stacks its gate and up rows in tiles (else: all gate rows,
    then all up rows)."""
    return width % GATE_TILE == 0


def tile_gate_up(stacked: torch.Tensor) -> torch.Tensor:
    """Gate rows then up rows, [2 width, ...] (a weight or a bias), in the MLP's order."""
    width = stacked.shape[0] // 2
    if not tiles_gate_up(width):
        return stacked
    tiles = stacked.reshape(2, width // GATE_TILE, GATE_TILE, *stacked.shape[1:])
    return tiles.transpose(0, 1).reshape(stacked.shape)


class MLP(nn.Module):
    def __init__(self, s: Shape, width: int | None = None):
        super().__init__()
        width = width or s.intermediate_size
        self.gate_up = nn.Linear(s.hidden_size, 2 * width, bias=s.mlp_bias)  # stacked, as qkv: tile_gate_up
        self.down = nn.Linear(width, s.hidden_size, bias=s.mlp_bias)
        self.silu, self.tiled = s.activation == "silu", tiles_gate_up(width)
        self.act = F.silu if self.silu else lambda g: F.gelu(g, approximate="tanh")

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP of x; with `residual`, residual + it (the layer's residual stream)."""
        h = None
        if self.silu and self.tiled and hasattr(self.gate_up, "silu_times_up"):
            h = self.gate_up.silu_times_up(x)  # a geared layer's GEMV writing SiLU(gate) * up, where it can
        if h is None:
            y = self.gate_up(x)
            if self.tiled:
                tiles = y.unflatten(-1, (-1, 2, GATE_TILE))
                gate, up = tiles[..., 0, :].flatten(-2), tiles[..., 1, :].flatten(-2)
            else:
                gate, up = y.chunk(2, dim=-1)
            h = self.act(gate) * up
        if residual is None:
            return self.down(h)
        if hasattr(self.down, "plus"):  # a geared layer: its GEMV adds the residual, where it can
            return self.down.plus(h, residual)
        return residual + self.down(h)


class Router(nn.Linear):
    """Scores each expert for each position; a subclass so that gearing leaves it at full
    precision (the choice of experts must not move with the gear)."""


class MoE(nn.Module):
    """Top-k routed experts, each a gated MLP; the router's softmax in float32, as the
    reference computes it."""

    def __init__(self, s: Shape):
        super().__init__()
        self.s = s
        self.router = Router(s.hidden_size, s.num_experts, bias=False)
        self.experts = nn.ModuleList(MLP(s, s.expert_intermediate_size) for _ in range(s.num_experts))
        if s.shared_expert_intermediate_size:
            self.shared = MLP(s, s.shared_expert_intermediate_size)
            self.shared_gate = Router(s.hidden_size, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.router(x).float(), dim=-1)
        weights, chosen = probs.topk(self.s.experts_per_token, dim=-1)  # [T, k]
        if self.s.normalize_top_k:
            weights = weights / weights.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        # Each chosen expert runs once on the positions that chose it. Reading the choice on
        # the host is a sync: a captured graph cannot do this (the backend runs MoE eagerly).
        for e in chosen.unique().tolist():
            rows, slot = torch.where(chosen == e)
            y = self.experts[e](x[rows]) * weights[rows, slot, None]
            out.index_add_(0, rows, y.to(x.dtype))
        if self.s.shared_expert_intermediate_size:
            out = out + torch.sigmoid(self.shared_gate(x)) * self.shared(x)
        return out


class Block(nn.Module):
    def __init__(self, s: Shape, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(s.hidden_size, s.norm_eps, s.norm_plus_one)
        self.attn = Attention(s, layer)
        self.mlp_norm = RMSNorm(s.hidden_size, s.norm_eps, s.norm_plus_one)
        self.mlp = MoE(s) if s.moe_layers and s.moe_layers[layer] else MLP(s)
        self.sandwich = s.sandwich_norms
        if s.sandwich_norms:
            self.post_attn_norm = RMSNorm(s.hidden_size, s.norm_eps, s.norm_plus_one)
            self.post_mlp_norm = RMSNorm(s.hidden_size, s.norm_eps, s.norm_plus_one)

    def forward(self, x, cos, sin, visible, cache: KVCache, pos: int | torch.Tensor) -> torch.Tensor:
        h = self.attn(self.attn_norm(x), cos, sin, visible, cache, pos)
        x = x + (self.post_attn_norm(h) if self.sandwich else h)
        if self.sandwich:
            return x + self.post_mlp_norm(self.mlp(self.mlp_norm(x)))
        if isinstance(self.mlp, MLP):
            return self.mlp(self.mlp_norm(x), residual=x)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    """Embedding, decoder layers, final norm and LM head, with a KV cache of `positions`."""

    def __init__(self, s: Shape, inv_freq: list[torch.Tensor], rope_scaling: list[float]):
        """`inv_freq[i]` and `rope_scaling[i]`: layer i's rotary frequencies and the factor on
        its cos and sin (1 except for YaRN-style scalings), as the family's config defines them."""
        super().__init__()
        self.shape = s
        self.embed = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(Block(s, i) for i in range(s.num_layers))
        self.norm = RMSNorm(s.hidden_size, s.norm_eps, s.norm_plus_one)
        self.lm_head = nn.Linear(s.hidden_size, s.vocab_size, bias=False)
        if s.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.inv_freq, self.rope_scaling = inv_freq, rope_scaling
        self.caches = nn.ModuleList()
        self.rotary_tables: list[torch.Tensor] = []

    def allocate(self, positions: int) -> None:
        """(Re)allocate the KV cache for `positions` and tabulate cos and sin up to there."""
        s = self.shape
        dtype, device = self.embed.weight.dtype, self.embed.weight.device
        self.caches = nn.ModuleList(
            KVCache(s.num_kv_heads, positions, s.head_dim, dtype, device) for _ in range(s.num_layers)
        )
        t = torch.arange(positions, device=device, dtype=torch.float32)
        tables = {}
        self.rotary_tables = []
        for inv_freq, scaling in zip(self.inv_freq, self.rope_scaling):
            key = (id(inv_freq), scaling)
            if key not in tables:  # layers of one type share one table
                freqs = torch.outer(t, inv_freq.to(device=device, dtype=torch.float32))
                angles = torch.cat((freqs, freqs), dim=-1)
                tables[key] = torch.stack([angles.cos() * scaling, angles.sin() * scaling]).to(dtype)
            self.rotary_tables.append(tables[key])

    @property
    def positions(self) -> int:
        return self.caches[0].k.shape[1] if len(self.caches) else 0

    def forward(self, ids: torch.Tensor, pos: int | torch.Tensor, keep: int | None = None) -> torch.Tensor:
        """Logits [T, vocab] for token ids [T] placed at positions pos..pos+T-1, after every
        earlier position in the cache; with `keep` (at least 1), only the last `keep` positions'
        logits. Writes the cache at those positions."""
        new = ids.shape[0]
        keep = new if keep is None else min(keep, new)
        logits, done = [], 0
        for x in self._hidden_states(ids, pos):
            done += x.shape[0]
            wanted = min(done - (new - keep), x.shape[0])  # of this chunk's positions, the last ones kept
            if wanted > 0:
                logits.append(self._head(x[x.shape[0] - wanted :]))
        return logits[0] if len(logits) == 1 else torch.cat(logits)

    def read_prompt(self, ids: torch.Tensor, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The last position's logits [vocab] and the entropy in bits at every position [T], for
        a prompt placed as in forward(). The LM head runs HEAD_ROWS positions at a time, so a
        long prompt never holds [T, vocab] logits (32k positions of a 128k vocabulary: 8 GB)."""
        entropies = []
        for x in self._hidden_states(ids, pos):
            for rows in x.split(HEAD_ROWS):
                logits = self._head(rows)
                entropies.append(entropy_varentropy(logits)[0])
        return logits[-1], torch.cat(entropies)

    def _hidden_states(self, ids: torch.Tensor, pos: int | torch.Tensor) -> Iterator[torch.Tensor]:
        """The last layer's output [T', hidden], chunk by chunk: a long prompt runs PREFILL_CHUNK
        positions at a time through every layer, so its attention's masks and scratch stay a
        chunk's size."""
        new = ids.shape[0]
        if isinstance(pos, torch.Tensor) or new <= PREFILL_CHUNK:
            yield self._layers(ids, pos)
            return
        for start in range(0, new, PREFILL_CHUNK):
            yield self._layers(ids[start : start + PREFILL_CHUNK], pos + start)

    def _layers(self, ids: torch.Tensor, pos: int | torch.Tensor) -> torch.Tensor:
        s, new = self.shape, ids.shape[0]
        x = self.embed(ids)
        if s.embed_scale != 1.0:
            x = x * torch.tensor(s.embed_scale, dtype=x.dtype)  # Gemma rounds the factor to x's dtype
        # An eager step attends over what is filled; a captured one over the whole cache, which
        # the GPU's decode attention reads only up to the position, and SDPA masked.
        captured = isinstance(pos, torch.Tensor)
        keys = self.positions if captured else pos + new
        masked = not (captured and reads_filled_only(x, s))
        # Captured, the layers take each new position's index (a verify pass has several).
        at = pos + torch.arange(new, device=pos.device) if captured and new > 1 else pos
        per_kind = {}  # layers with one rotary table and one window share cos, sin and the mask
        for layer, cache, table in zip(self.layers, self.caches, self.rotary_tables):
            window = s.sliding_window if layer.attn.sliding else None
            kind = (id(table), window)
            if kind not in per_kind:
                rows = table.index_select(1, at) if captured else table[:, pos : pos + new]
                per_kind[kind] = (*rows, attention_mask(pos, new, window, keys, x.device) if masked else None)
            x = layer(x, *per_kind[kind], cache, at)
        return x

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the last layer's output x [T, hidden]: final norm and LM head (a few rows
        through kernels.matmul)."""
        logits = linear(self.norm(x), self.lm_head.weight)
        if self.shape.final_softcap is not None:
            logits = torch.tanh(logits / self.shape.final_softcap) * self.shape.final_softcap
        return logits
