"""The Triton kernels of gearterm.kernels.decode_attention: one key/value head's slice of the cache,
attended by every query head of its group at each of T consecutive positions, as a partial
softmax (max, sum, weighted sum); then one program a query head and position merges its
slices. Both read the first position, pos, from the device: the query at pos + t sees the keys
0..pos + t (the last `WINDOW` of them in a sliding-window layer), and slices no query sees are
neither attended nor merged."""

from __future__ import annotations

import triton
import triton.language as tl

_FAR_BELOW = tl.constexpr(-1.0e30)  # a masked score: exp() of it minus any real score is 0, and never NaN


# tl.sum and tl.max are jit functions of Triton's standard library that stay compiled in a
# process that imported triton before TRITON_INTERPRET was set (a test session); tl.reduce
# with our own combine functions runs in the interpreter too (see gearterm.kernels.triton_gears).
@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _span(filled, SLICE: tl.constexpr, SPREAD: tl.constexpr):
    """Positions one slice attends over: SLICE, doubled until SPREAD slices cover the `filled`
    positions (16 doublings: up to 2**16 SLICE SPREAD positions). The grid holds SPREAD programs
    a key/value head (a captured graph fixes it); a short conversation leaves the later ones
    nothing to read. Few short slices keep the SMs busy early in a conversation, long ones
    stream the cache late in it (measured on an H100: docs/benchmarks/context-h200.md)."""
    span = filled * 0 + SLICE
    for _ in tl.static_range(16):
        span = tl.where(span * SPREAD < filled, span * 2, span)
    return span


@triton.jit
def _first_visible(pos, WINDOW):
    """The first key the query at `pos` sees: 0, or the start of its sliding window."""
    return tl.where(WINDOW > 0, tl.maximum(pos - WINDOW + 1, 0), 0)


@triton.jit
def attend_slices(
    q_ptr, k_ptr, v_ptr, pos_ptr, out_ptr, max_ptr, sum_ptr,
    T, L, WINDOW, scale, stride_qt, stride_qh, stride_kh, stride_kl, stride_vh, stride_vl,
    GROUP: tl.constexpr,  # query heads per key/value head
    ROWS: tl.constexpr,  # T * GROUP padded to tl.dot's 16 rows (or the next power of two)
    HEAD_DIM: tl.constexpr,
    DIM: tl.constexpr,  # HEAD_DIM padded to a power of two, at least 16 (tl.dot's minimum)
    SLICE: tl.constexpr,  # positions per program, at least (_span)
    SPREAD: tl.constexpr,  # slices per key/value head, at most, past SPREAD * SLICE positions filled
    BLOCK: tl.constexpr,  # positions per step
    IEEE: tl.constexpr,  # float32 inputs: full-precision dots instead of tf32
    PDL: tl.constexpr,  # launched as a dependent (kernels.dependent_launch)
):  # fmt: skip
    if PDL:  # everything it reads comes from kernels before it: only its launch overlaps
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    kv_head = tl.program_id(0)
    slice_id = tl.program_id(1)
    slices = tl.num_programs(1)
    pos = tl.load(pos_ptr).to(tl.int32)  # as the slice offsets: one integer type in the loop bounds
    first = _first_visible(pos, WINDOW)  # the first query's: the later ones' windows start later
    span = _span(pos + T, SLICE, SPREAD)
    lo = slice_id * span
    hi = tl.minimum(lo + span, pos + T)  # past the last query's position: nothing to read
    if (hi <= lo) | (lo + span <= first):  # the merge skips this slice: it writes nothing
        return
    r = tl.arange(0, ROWS)  # row r: query t = r // GROUP, head g = r % GROUP of the group
    t = r // GROUP
    heads = kv_head * GROUP + r % GROUP
    row_ok = r < T * GROUP
    row_last = pos + t  # the last key each row sees, and its first
    row_first = _first_visible(row_last, WINDOW)
    d = tl.arange(0, DIM)
    d_ok = d < HEAD_DIM
    q_rows = q_ptr + t[:, None] * stride_qt + heads[:, None] * stride_qh + d[None, :]
    q = tl.load(q_rows, mask=row_ok[:, None] & d_ok[None, :], other=0.0)

    row_max = tl.full([ROWS], _FAR_BELOW, tl.float32)
    row_sum = tl.full([ROWS], 0.0, tl.float32)
    acc = tl.full([ROWS, DIM], 0.0, tl.float32)
    for start in tl.range(lo, hi, BLOCK):
        key = start + tl.arange(0, BLOCK)
        ok = (key < hi) & (key >= first) & (key < L)
        kv_mask = ok[:, None] & d_ok[None, :]
        # Causal per row: the query at pos + t sees no later key (nor one before its window).
        seen = ok[None, :] & (key[None, :] <= row_last[:, None]) & (key[None, :] >= row_first[:, None])
        k = tl.load(k_ptr + kv_head * stride_kh + key[:, None] * stride_kl + d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + kv_head * stride_vh + key[:, None] * stride_vl + d[None, :], mask=kv_mask, other=0.0)
        # A group's few heads are padded to 16 rows: tensor cores, and far fewer registers
        # than a broadcast product over [heads, positions, dim].
        if IEEE:
            scores = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        else:
            scores = tl.dot(q, tl.trans(k)) * scale
        scores = tl.where(seen, scores, _FAR_BELOW)
        new_max = tl.maximum(row_max, tl.reduce(scores, 1, _max))
        p = tl.where(seen, tl.exp(scores - new_max[:, None]), 0.0)
        rescale = tl.exp(row_max - new_max)
        row_sum = row_sum * rescale + tl.reduce(p, 1, _add)
        if IEEE:
            acc = acc * rescale[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v)
        row_max = new_max

    # A row that sees no key of this slice stores max -1e30 and sum 0: the merge weighs it 0.
    part = (t * tl.num_programs(0) * GROUP + heads) * slices + slice_id
    tl.store(out_ptr + part[:, None] * HEAD_DIM + d[None, :], acc, mask=row_ok[:, None] & d_ok[None, :])
    tl.store(max_ptr + part, row_max, mask=row_ok)
    tl.store(sum_ptr + part, row_sum, mask=row_ok)


@triton.jit
def merge_slices(
    out_ptr, max_ptr, sum_ptr, y_ptr, pos_ptr, S, WINDOW, HEADS,
    SLICE: tl.constexpr,  # as attend_slices took them
    SPREAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    DIM: tl.constexpr,  # HEAD_DIM padded to a power of two
    SLICES: tl.constexpr,  # slices read at a time
    PDL: tl.constexpr,  # as attend_slices
):  # fmt: skip
    """y[t, head] = sum over slices of out * exp(max - top) / sum over slices of sum * exp(max - top),
    top the row's largest score: each slice rescaled to it, online, SLICES at a time over the
    slices that attended (those holding keys first..pos + t)."""
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    head = tl.program_id(0)  # the row: query t = head // HEADS
    first_pos = tl.load(pos_ptr).to(tl.int32)  # as the slice offsets: one integer type
    span = _span(first_pos + tl.num_programs(0) // HEADS, SLICE, SPREAD)  # as attend_slices spanned them
    pos = first_pos + head // HEADS
    begin = _first_visible(pos, WINDOW) // span
    end = tl.minimum(pos // span + 1, S)
    d = tl.arange(0, DIM)
    d_ok = d < HEAD_DIM
    top = tl.full([1], _FAR_BELOW, tl.float32)
    total = tl.full([1], 0.0, tl.float32)
    y = tl.full([DIM], 0.0, tl.float32)
    for first in tl.range(begin, end, SLICES):
        s = first + tl.arange(0, SLICES)
        s_ok = s < end
        part = head * S + s
        row_max = tl.load(max_ptr + part, mask=s_ok, other=_FAR_BELOW)
        row_sum = tl.load(sum_ptr + part, mask=s_ok, other=0.0)
        out = tl.load(out_ptr + part[:, None] * HEAD_DIM + d[None, :], mask=s_ok[:, None] & d_ok[None, :], other=0.0)
        new_top = tl.maximum(top, tl.reduce(row_max, 0, _max))
        weight = tl.exp(row_max - new_top)  # 0 past the last slice
        rescale = tl.exp(top - new_top)
        total = total * rescale + tl.reduce(row_sum * weight, 0, _add)
        y = y * rescale + tl.reduce(out * weight[:, None], 0, _add)
        top = new_top
    tl.store(y_ptr + head * HEAD_DIM + d, (y / total).to(y_ptr.dtype.element_ty), mask=d_ok)
