"""Where a captured decode step's GPU time goes: its kernels, timed by torch.profiler (CUPTI
traces the kernels a CUDA graph launches), summed by what they do.

`bench decode --profile` prints one line a gear. A kernel's part is its time over the steps
profiled; "gaps" is the step's wall time (graph replays back to back, one sync at the end)
less the kernels' sum: time the GPU waited between kernels. With dependent launches
(kernels.dependent_launch) a kernel starts before the one before it ends and waits inside,
so the parts overlap and the gaps go negative.
"""

from __future__ import annotations

import re
import time

# Kernel names by part, first match wins (gear GEMVs: the low and mid gears', their experiments'
# too, and the high gear's own where it runs, kernels.matmul.own_high_gemv). cuBLAS names carry
# gemv, gemm, xmma or (CUDA 13) nvjet.
PARTS = [
    ("gear GEMVs", re.compile(r"_gemv(_mma|_f16|_tma|_qkv)?_kernel|_gemm_kernel")),
    ("cuBLAS (16-bit weights)", re.compile(r"gemv|gemm|xmma|cutlass|cublas|nvjet", re.IGNORECASE)),
    ("attention", re.compile(r"attend_slices|merge_slices")),
]
REST = "the rest (norms, rotary, cache writes, residuals, readings)"
REST_SHOWN = 6
OVERLAP = (" (kernels overlapped: launched as dependents, each one's time includes its wait for the"
           " kernel before, so the parts add up to more than the step; GEARTERM_PDL=0 gives a split that adds up)")


def part_of(kernel: str) -> str:
    for part, pattern in PARTS:
        if pattern.search(kernel):
            return part
    return REST


def step_split(decoder, gear, steps: int = 32) -> dict:
    """Milliseconds a step by part, plus "kernels", "wall" and "gaps", for the captured step
    of `gear` replayed `steps` times over the cache as it stands (the caller sets it up as
    graph_step_ms does). An empty dict where the profiler saw no kernel."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            decoder.replay(gear)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    totals: dict[str, float] = {}
    rest: dict[str, float] = {}
    for event in prof.key_averages():
        us = getattr(event, "self_device_time_total", 0.0)
        if us > 0 and event.device_type == torch.autograd.DeviceType.CUDA:
            part = part_of(event.key)
            totals[part] = totals.get(part, 0.0) + us
            if part == REST:
                rest[event.key] = us / 1e3 / steps
    if not totals:
        return {}
    split = {part: us / 1e3 / steps for part, us in totals.items()}
    split["kernels"] = sum(split.values())
    split["wall"] = 1e3 * wall / steps
    split["gaps"] = split["wall"] - split["kernels"]
    # The largest of the rest by name: what fusing the glue would go after first.
    split["largest of the rest"] = dict(sorted(rest.items(), key=lambda kv: -kv[1])[:REST_SHOWN])
    return split


def describe(gear_label: str, split: dict) -> str:
    if not split:
        return f"step split {gear_label}: n/a (the profiler saw no kernel inside the graphs)"
    parts = [name for name, _ in PARTS] + [REST]
    shown = ", ".join(f"{name} {split.get(name, 0.0):.3f}" for name in parts)
    largest = ", ".join(f"{name[:60]} {ms:.3f}" for name, ms in split.get("largest of the rest", {}).items())
    return (f"step split {gear_label} (ms a step, torch.profiler): {shown}; kernels {split['kernels']:.3f}, "
            f"wall {split['wall']:.3f} (profiled), gaps {split['gaps']:.3f}{OVERLAP if split['gaps'] < 0 else ''}\n"
            f"  largest of the rest: {largest}")
