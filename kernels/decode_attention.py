"""Attention for one new position over a static KV cache, with grouped-query heads read in
place: the decode step's attention in two Triton kernels.

transformers' SDPA path copies every key/value head once per query head that shares it
(repeat_kv) before attending: for a Llama-3-8B (32 query heads on 8 key/value heads) that
is four copies of the cache a layer, every token. Here a program takes one key/value head
and a slice of the cache, loads each key and value once and attends with all the query
heads of its group; a second kernel merges the slices' partial softmaxes (split-K over
positions, "flash-decoding"), so a short cache still spreads over enough programs.

`decode_attention_reference` (plain torch, float32) is the ground truth the kernel is
tested against.
"""

from __future__ import annotations

import torch

BLOCK_POSITIONS = 64  # positions a program loads per step
SLICE_POSITIONS = 128  # positions a program attends over; its partial softmax is merged after


def decode_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float):
    """q [H, D] for one position; k, v [KVH, L, D] the cache; valid [L] bool. Returns [H, D].
    Query head h reads key/value head h // (H // KVH), as repeat_kv arranges it."""
    group = q.shape[0] // k.shape[0]
    kf = k.float().repeat_interleave(group, 0)
    vf = v.float().repeat_interleave(group, 0)
    scores = torch.einsum("hd,hld->hl", q.float(), kf) * scale
    scores = scores.masked_fill(~valid, float("-inf"))
    return torch.einsum("hl,hld->hd", scores.softmax(-1), vf).to(q.dtype)


def _attend_triton(q, k, v, valid, scale):
    import triton

    from gearterm.kernels.triton_decode_attention import attend_slices, merge_slices

    heads, dim = q.shape
    kv_heads, length, _ = k.shape
    group = heads // kv_heads
    slices = triton.cdiv(length, SLICE_POSITIONS)
    out = torch.empty(heads, slices, dim, dtype=torch.float32, device=q.device)
    row_max = torch.empty(heads, slices, dtype=torch.float32, device=q.device)
    row_sum = torch.empty_like(row_max)
    padded_dim = max(triton.next_power_of_2(dim), 16)
    attend_slices[(kv_heads, slices)](
        q, k, v, valid, out, row_max, row_sum,
        length, scale, q.stride(0), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        GROUP=group, ROWS=max(triton.next_power_of_2(group), 16), HEAD_DIM=dim, DIM=padded_dim,
        SLICE=SLICE_POSITIONS, BLOCK=BLOCK_POSITIONS, IEEE=q.dtype == torch.float32,
    )  # fmt: skip
    y = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    merge_slices[(heads,)](out, row_max, row_sum, y, slices, HEAD_DIM=dim, DIM=padded_dim, SLICES=triton.next_power_of_2(slices))
    return y


@torch.library.custom_op("gearterm::decode_attention", mutates_args=())
def _decode_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float) -> torch.Tensor:
    """One opaque operator under torch.compile (dynamo does not trace the Triton launches)."""
    return _attend_triton(q, k, v, valid, scale)


@_decode_attention_op.register_fake
def _(q, k, v, valid, scale):
    return q.new_empty(q.shape)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float):
    """As decode_attention_reference, on a CUDA device through the Triton kernels. k and v may
    be strided views of the cache (their last dimension contiguous); valid must be bool."""
    if q.shape[0] % k.shape[0]:
        raise ValueError(f"{q.shape[0]} query heads do not share {k.shape[0]} key/value heads evenly")
    if k.stride(-1) != 1 or v.stride(-1) != 1 or q.stride(-1) != 1:
        raise ValueError("decode_attention needs the head dimension contiguous")
    return _decode_attention_op(q, k, v, valid, scale)
