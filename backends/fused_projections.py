"""Llama attention and MLP with their projections stacked: q, k and v as one matrix, gate and
up as another, and decode attention that reads grouped key/value heads in place.

At batch 1 every projection is one matrix-vector product whose fixed cost (launch, ramp-up,
tail) is several microseconds; stacking seven a layer into four saves that cost three times
a layer and gives each kernel a taller matrix, which streams closer to full bandwidth.
Stacking rows changes no gear: each row's groups are quantized on their own, so the stacked
planes hold exactly the codes and scales the separate ones would.

The attention module keeps transformers' rotary embedding, cache update and (for prompts)
its configured attention function; only the one-position decode step on a GPU goes through
gearterm.kernels.decode_attention instead of SDPA with repeat_kv's copies of the cache.
"""

from __future__ import annotations

import sys
import types

import torch
from torch import nn

from gearterm.kernels.decode_attention import decode_attention

STACKABLE_ATTENTION = {"LlamaAttention"}
STACKABLE_MLP = {"LlamaMLP"}


def stack_projections(layers: nn.ModuleList) -> int:
    """Stack the projections of every Llama attention and MLP in `layers` (plain nn.Linear
    modules, before gearing); returns how many modules changed."""
    changed = 0
    for layer in layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if type(attn).__name__ in STACKABLE_ATTENTION:
            parts = [attn.q_proj, attn.k_proj, attn.v_proj]
            attn.qkv_sizes = [p.out_features for p in parts]
            attn.qkv_proj = _stacked(parts)
            del attn.q_proj, attn.k_proj, attn.v_proj
            source = sys.modules[type(attn).__module__]
            attn.apply_rotary_pos_emb, attn.eager_attention = source.apply_rotary_pos_emb, source.eager_attention_forward
            attn.forward = types.MethodType(_attention_forward, attn)
            changed += 1
        if type(mlp).__name__ in STACKABLE_MLP:
            mlp.gate_up_proj = _stacked([mlp.gate_proj, mlp.up_proj])
            del mlp.gate_proj, mlp.up_proj
            mlp.forward = types.MethodType(_mlp_forward, mlp)
            changed += 1
    return changed


def _stacked(parts: list[nn.Linear]) -> nn.Linear:
    first = parts[0]
    stacked = nn.Linear(first.in_features, sum(p.out_features for p in parts), bias=first.bias is not None)
    stacked = stacked.to(device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        stacked.weight.copy_(torch.cat([p.weight for p in parts]))
        if first.bias is not None:
            stacked.bias.copy_(torch.cat([p.bias for p in parts]))
    return stacked


def _mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
    return self.down_proj(self.act_fn(gate) * up)


def _attention_forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
    """LlamaAttention.forward (transformers 5.25) with one stacked projection for q, k and v."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    q, k, v = (t.view(hidden_shape).transpose(1, 2) for t in self.qkv_proj(hidden_states).split(self.qkv_sizes, -1))
    cos, sin = position_embeddings
    q, k = self.apply_rotary_pos_emb(q, k, cos, sin)
    if cache is not None:
        k, v = cache.update(k, v, self.layer_idx, kwargs=kwargs)

    valid = _decode_positions(q, k, attention_mask)
    if valid is not None:
        out = decode_attention(q[0, :, 0], k[0], v[0], valid, self.scaling)  # [heads, head_dim]
        return self.o_proj(out.reshape(*input_shape, -1)), None
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, self.eager_attention)
    out, weights = interface(self, q, k, v, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs)
    return self.o_proj(out.reshape(*input_shape, -1).contiguous()), weights


def _decode_positions(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    """The cache positions one new query position may attend to ([L] bool), where the decode
    kernel applies: batch 1, one position, on a GPU. None otherwise."""
    batch, _, positions, _ = q.shape
    if not q.is_cuda or batch != 1 or positions != 1:
        return None
    length = k.shape[2]
    if mask is None:
        return torch.ones(length, dtype=torch.bool, device=q.device)
    row = mask[0, 0, -1, :length]  # [batch, 1, query positions, key positions]
    return row if row.dtype == torch.bool else row == 0  # additive masks: 0 where allowed
