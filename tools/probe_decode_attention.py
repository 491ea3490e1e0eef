"""The decode attention's slice and block sizes (kernels.decode_attention) at a short and a long
filled length of a Llama-3-8B layer's cache (8 key/value heads, 32 query heads, head dim 128, fp16,
33,024 positions held): each fixed slice size, and the library's default (slices that grow with
the filled length, SPREAD), checked against the float32 reference, then timed alone (the median
of graph replays, as bench kernels times); TB/s counts the keys and values filled.
Run from the repository root on a CUDA GPU: python3 tools/probe_decode_attention.py"""

import torch
import triton

from gearterm.bench.kernels import time_calls
from gearterm.kernels.decode_attention import MERGE_SLICES, decode_attention, decode_attention_reference
from gearterm.kernels.triton_decode_attention import attend_slices, merge_slices

torch.manual_seed(0)
KVH, H, D, L = 8, 32, 128, 33024
k = torch.randn(KVH, L, D, dtype=torch.float16, device="cuda")
v = torch.randn_like(k)
q = torch.randn(1, H, D, dtype=torch.float16, device="cuda")
scale = D**-0.5
# As SPREAD: slices never grow, each setting keeps its slice size. (span * SPREAD must stay an int32:
# with 1 << 20 a 2,048-position slice overflowed and grew, 580 us at 32k filled.)
FIXED = 1 << 16


def attend(pos, slice_, block, warps, stages, spread=FIXED, slices=None):
    slices = slices or min(triton.cdiv(L, slice_), spread)  # as the library's grid: no more than ever attend
    out = torch.empty(H, slices, D, dtype=torch.float32, device="cuda")
    row_max = torch.empty(H, slices, dtype=torch.float32, device="cuda")
    row_sum = torch.empty_like(row_max)
    attend_slices[(KVH, slices)](
        q, k, v, pos, out, row_max, row_sum, 1, L, 0, scale, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
        v.stride(0), v.stride(1), GROUP=H // KVH, ROWS=16, HEAD_DIM=D, DIM=D, SLICE=slice_, SPREAD=spread, BLOCK=block, IEEE=False, PDL=False,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
    y = torch.empty_like(q)
    merge_slices[(H,)](out, row_max, row_sum, y, pos, slices, 0, H, SLICE=slice_, SPREAD=spread, HEAD_DIM=D, DIM=D,
                       SLICES=min(triton.next_power_of_2(slices), MERGE_SLICES), PDL=False)  # fmt: skip
    return y


def report(filled, setting, call, ref, nbytes):
    err = (call()[0].float() - ref).abs().max().item()
    t = time_calls([call] * 20, torch)
    print(f"filled {filled:6d} {setting:42s}: {t:7.1f} us  {nbytes / t / 1e6:5.2f} TB/s  max err {err:.4f}")


print(torch.cuda.get_device_name(), torch.__version__, triton.__version__)
for filled in (512, 4096, 32768):
    pos = torch.tensor([filled - 1], device="cuda")
    ref = decode_attention_reference(q[0], k, v, pos, None, scale).float()
    nbytes = 2 * KVH * filled * D * 2
    for slice_, block, warps, stages in [(128, 64, 4, 3), (256, 64, 4, 3), (512, 64, 4, 3), (512, 128, 8, 3),
                                         (1024, 64, 4, 4), (256, 128, 4, 2), (512, 64, 8, 4), (2048, 64, 4, 4)]:  # fmt: skip
        call = lambda: attend(pos, slice_, block, warps, stages)  # noqa: E731
        report(filled, f"slice {slice_:5d} block {block:4d} warps {warps} stages {stages}", call, ref, nbytes)
    # Slices of 128 that grow until SPREAD of them cover a key/value head, as the library's
    for spread, block, warps, stages in [(16, 64, 4, 3), (16, 128, 8, 3), (16, 64, 4, 5), (32, 128, 8, 3),
                                         (32, 64, 4, 5), (64, 64, 4, 3), (64, 64, 4, 5), (64, 128, 8, 4)]:  # fmt: skip
        call = lambda: attend(pos, 128, block, warps, stages, spread)  # noqa: E731
        report(filled, f"grow x{spread:<3d} block {block:4d} warps {warps} stages {stages}", call, ref, nbytes)
    # The library's grid until 2026-12-07: a program for every 128 positions of the cache, most of
    # them exiting at once, after the working ones that share their multiprocessor.
    call = lambda: attend(pos, 128, 64, 4, 3, 32, triton.cdiv(L, 128))  # noqa: E731
    report(filled, "grow x32 block 64, grid of every slice (before)", call, ref, nbytes)
    report(filled, "default (slices grow)", lambda: decode_attention(q, k, v, pos, None, scale), ref, nbytes)
