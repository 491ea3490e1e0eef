"""Attention for one new position, or a few consecutive ones, over a static KV cache, with
grouped-query heads read in place: the decode step's attention (and lossless mode's verify
pass's) in two Triton kernels.

transformers' SDPA path copies every key/value head once per query head that shares it
(repeat_kv) before attending: for a Llama-3-8B (32 query heads on 8 key/value heads) that
is four copies of the cache a layer, every token. Here a program takes one key/value head
and a slice of the cache, loads each key and value once and attends with all the query
heads of its group, at every position of a verify pass (causally: the query at pos + t sees
keys up to pos + t); a second kernel merges the slices' partial softmaxes (split-K over
positions, "flash-decoding"), so a short cache still spreads over enough programs.

The position being decoded comes from the device (a captured CUDA graph replays with it), and
the kernels read it there: a slice past it, or before a sliding window's start, exits at once
and the merge reads only the slices that attended. So a step's cost follows the positions
filled, not the size of the cache.

`decode_attention_reference` (plain torch, float32) is the ground truth the kernel is
tested against.
"""

from __future__ import annotations

import torch

BLOCK_POSITIONS = 64  # positions a program loads per step
SLICE_POSITIONS = 128  # positions a program attends over, at least; its partial softmax is merged after
# Past SPREAD * SLICE_POSITIONS positions filled, slices grow (doubling) so that at most SPREAD
# of them cover a key/value head: at 32,768 filled on an H100 a layer attends in 52.8 us against
# 77.8 us with fixed 128-position slices; at 4,096 filled 128 was fastest (context-h200.md).
SPREAD = 32
MERGE_SLICES = 16  # slices the merge reads at a time
MAX_QUERIES = 16  # consecutive positions one call attends for (a program holds T x group rows)


def visible_keys(pos: torch.Tensor, window: int | None, length: int) -> torch.Tensor:
    """[length] bool: the keys the query at `pos` ([1] on the device) attends to: 0..pos, and
    within `window` of it where the layer has a sliding window."""
    keys = torch.arange(length, device=pos.device)
    visible = keys <= pos
    return visible & (pos - keys < window) if window else visible


def decode_attention_reference(q, k, v, pos: torch.Tensor, window: int | None, scale: float) -> torch.Tensor:
    """q [H, D] for the position `pos` ([1]), or [T, H, D] for pos..pos + T - 1; k, v
    [KVH, L, D] the cache. Returns q's shape. Query head h reads key/value head h // (H // KVH),
    as repeat_kv arranges it."""
    if q.dim() == 2:
        return decode_attention_reference(q[None], k, v, pos, window, scale)[0]
    group = q.shape[1] // k.shape[0]
    kf = k.float().repeat_interleave(group, 0)
    vf = v.float().repeat_interleave(group, 0)
    out = []
    for t in range(q.shape[0]):
        scores = torch.einsum("hd,hld->hl", q[t].float(), kf) * scale
        scores = scores.masked_fill(~visible_keys(pos + t, window, k.shape[1]), float("-inf"))
        out.append(torch.einsum("hl,hld->hd", scores.softmax(-1), vf))
    return torch.stack(out).to(q.dtype)


def _attend_triton(q, k, v, pos, window, scale):
    import triton

    from gearterm.kernels import dependent_launch
    from gearterm.kernels.triton_decode_attention import attend_slices, merge_slices

    queries, heads, dim = q.shape
    kv_heads, length, _ = k.shape
    group = heads // kv_heads
    # No more than SPREAD slices ever attend (kernels.triton_decode_attention._span), so the grid
    # holds no more: programs past them only start and exit, and each start waits for a working
    # program's shared memory (57.8 against 52.8 us a layer at 32k filled, context-h200.md).
    slices = min(triton.cdiv(length, SLICE_POSITIONS), SPREAD)
    out = torch.empty(queries * heads, slices, dim, dtype=torch.float32, device=q.device)
    row_max = torch.empty(queries * heads, slices, dtype=torch.float32, device=q.device)
    row_sum = torch.empty_like(row_max)
    padded_dim = max(triton.next_power_of_2(dim), 16)
    pdl = dependent_launch.enabled(q.device)
    attend_slices[(kv_heads, slices)](
        q, k, v, pos, out, row_max, row_sum,
        queries, length, window, scale, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        GROUP=group, ROWS=max(triton.next_power_of_2(queries * group), 16), HEAD_DIM=dim, DIM=padded_dim,
        SLICE=SLICE_POSITIONS, SPREAD=SPREAD, BLOCK=BLOCK_POSITIONS, IEEE=q.dtype == torch.float32,
        PDL=pdl, launch_pdl=pdl,
    )  # fmt: skip
    y = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    merge_slices[(queries * heads,)](
        out, row_max, row_sum, y, pos, slices, window, heads,
        SLICE=SLICE_POSITIONS, SPREAD=SPREAD, HEAD_DIM=dim, DIM=padded_dim,
        SLICES=min(triton.next_power_of_2(slices), MERGE_SLICES), PDL=pdl, launch_pdl=pdl,
    )  # fmt: skip
    return y


@torch.library.custom_op("gearterm::decode_attention", mutates_args=())
def _decode_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor, window: int,
                         scale: float) -> torch.Tensor:  # fmt: skip
    """One opaque operator under torch.compile (dynamo does not trace the Triton launches)."""
    return _attend_triton(q, k, v, pos, window, scale)


@_decode_attention_op.register_fake
def _(q, k, v, pos, window, scale):
    return q.new_empty(q.shape)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor, window: int | None,
                     scale: float) -> torch.Tensor:  # fmt: skip
    """As decode_attention_reference, on a CUDA device through the Triton kernels, for up to
    MAX_QUERIES positions. k and v may be strided views of the cache (their last dimension
    contiguous); pos is an int64 [1]."""
    if q.dim() == 2:
        return decode_attention(q[None], k, v, pos, window, scale)[0]
    if q.shape[1] % k.shape[0]:
        raise ValueError(f"{q.shape[1]} query heads do not share {k.shape[0]} key/value heads evenly")
    if k.stride(-1) != 1 or v.stride(-1) != 1 or q.stride(-1) != 1:
        raise ValueError("decode_attention needs the head dimension contiguous")
    longest = SLICE_POSITIONS * SPREAD << 16  # the slices' span doubles 16 times at most
    if k.shape[1] > longest:
        raise ValueError(f"decode_attention reads a cache of at most {longest} positions")
    if q.shape[0] > MAX_QUERIES:
        raise ValueError(f"decode_attention attends for at most {MAX_QUERIES} positions, not {q.shape[0]}")
    return _decode_attention_op(q, k, v, pos, window or 0, scale)
