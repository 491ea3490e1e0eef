"""The bytes one decode step must read, per gear, and the device's read rate measured on the LM
head: together they give a step's weight-read limit, the tokens/s no kernel can beat."""

from __future__ import annotations

import time

import torch

from gearterm.backends.decoder import Decoder
from gearterm.backends.geared_linear import GearedLinear
from gearterm.kernels.gear import Gear

BANDWIDTH_METHOD = "the LM head's batch-1 GEMV (F.linear, cuBLAS on a GPU), timed in this run"


def weight_bytes(model: Decoder) -> dict[Gear, int]:
    """Per gear, the weight bytes one step reads: every geared projection's planes at that
    gear, the rest of the decoder layers at full precision (norms, biases, routers), the final
    norm, the whole LM head and one embedding row. A mixture of experts counts every expert,
    so its figure is an upper bound."""
    geared = [m for m in model.layers.modules() if isinstance(m, GearedLinear)]
    in_planes = {id(t) for m in geared for t in m.buffers()}
    rest = [t for t in [*model.layers.parameters(), *model.layers.buffers()] if id(t) not in in_planes]
    full = sum(t.nbytes for t in [*rest, *model.norm.parameters(), model.lm_head.weight])
    embed_row = model.embed.weight[0]
    bias = sum(m.bias.nbytes for m in geared if m.bias is not None)
    return {gear: full + embed_row.nbytes + bias + sum(m.planes.nbytes(gear) for m in geared) for gear in Gear}


def kv_bytes_per_position(model: Decoder) -> int:
    """Keys and values of one position in every layer: what attention reads per position filled."""
    cache = model.caches[0]
    return len(model.caches) * (cache.k.nbytes + cache.v.nbytes) // cache.k.shape[1]


def lm_head_read_tbps(model: Decoder, repeats: int = 100) -> float:
    """TB/s the device reads the LM head's weight at in a batch-1 GEMV (on an H200, cuBLAS:
    4.18 TB/s on Llama-3's 128256x4096): a rate a plain kernel reaches on large weights."""
    w = model.lm_head.weight
    x = torch.randn(1, w.shape[1], dtype=w.dtype, device=w.device)
    with torch.inference_mode():
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        if w.is_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                torch.nn.functional.linear(x, w)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1e3 / repeats
        else:
            began = time.perf_counter()
            for _ in range(repeats):
                torch.nn.functional.linear(x, w)
            seconds = (time.perf_counter() - began) / repeats
    return w.nbytes / seconds / 1e12


def read_rates(bytes_per_step: float, tok_per_s: float, bandwidth_tbps: float) -> dict:
    """A row's bytes per step, the TB/s its tokens/s reads at, the tokens/s the bandwidth
    allows (the weight-read limit) and the share of that limit reached."""
    tbps = bytes_per_step * tok_per_s / 1e12
    return {
        "bytes_per_step": bytes_per_step,
        "tbps": tbps,
        "limit_tok_per_s": bandwidth_tbps * 1e12 / bytes_per_step,
        "limit_share": tbps / bandwidth_tbps,
    }
