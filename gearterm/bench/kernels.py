"""`gearterm bench kernels`: the gear kernels against cuBLAS on one CUDA GPU.

For each weight shape (out x in) and batch: cuBLAS in fp16 and bf16, our low gear (plane H)
and mid gear (planes H + L) kernels, the high gear's own fp16 GEMV (batch 1; the original
weight, gearterm.kernels.triton_gemv_f16), and torch.compile's int8 weight-only matmul where it
compiles. Each is first checked against a float64 product with the weight it stands for
(max abs error), then timed: one CUDA graph replays many calls that rotate through enough
weight copies to overflow L2, so every call reads its weights from device memory. TB/s is
weight bytes (codes and scales for the gears) over time; share is TB/s over the fastest read
cuBLAS fp16 made at batch 1 in the same run (the byte limit, as bench decode's).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
from pathlib import Path

from gearterm.errors import UsageError

SHAPES = ["4096x4096", "14336x4096", "4096x14336", "128256x4096"]
BATCHES = [1, 16]
IMPLS = ["fp16", "bf16", "low", "mid", "high", "int8"]
LABELS = {
    "fp16": "cuBLAS fp16",
    "bf16": "cuBLAS bf16",
    "low": "low gear (H)",
    "mid": "mid gear (H+L)",
    "high": "high gear (own)",
    "int8": "int8 compiled",
}
ROTATION_BYTES = 4 * 50e6  # four times an H100's L2: each call's weights come from HBM
MIN_CALLS = 64  # calls per graph replay
REPLAYS = 9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", action="append", help="OUTxIN, repeatable (default: the four Llama-3-8B shapes)")
    parser.add_argument("--batch", type=int, action="append", help="rows of x, repeatable (default: 1 and 16)")
    parser.add_argument("--impl", action="append", choices=IMPLS, help="implementations to run (default: all)")
    parser.add_argument(
        "--sweep", action="store_true", help="also time other block sizes for the gear kernels (JSON rows with a config)"
    )
    parser.add_argument(
        "--sweep-key", action="append", help="sweep only the block sizes that set this key (KS, PIN, BLOCK_N...), repeatable"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list instead of the table")
    parser.add_argument("--json-out", type=Path, help="also write the rows as one JSON list to this file")


def parse_shape(text: str) -> tuple[int, int]:
    try:
        out_features, in_features = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--shape {text!r}: write it as OUTxIN, e.g. 4096x14336") from None
    if out_features <= 0 or in_features <= 0:
        raise UsageError(f"--shape {text!r}: both sizes must be positive")
    return out_features, in_features


class Case:
    """One implementation at one shape: its rotated weight copies, a call, the float64
    reference of that call and the bytes it reads."""

    def __init__(self, impl: str, copies: list, call, reference, nbytes: int):
        self.impl, self.copies, self.call, self.reference, self.nbytes = impl, copies, call, reference, nbytes


def build_cases(impls, out_features: int, in_features: int, n_copies: int, torch, device: str = "cuda"):
    import torch.nn.functional as F

    from gearterm.kernels.gear import Gear
    from gearterm.kernels.nested import dequantize, pack
    from gearterm.kernels.triton_gears import gear_matmul
    from gearterm.kernels.triton_gemv_f16 import gemv_f16
    from gearterm.kernels.word_planes import to_nested, to_word_planes

    originals = [torch.randn(out_features, in_features, device=device, dtype=torch.float16) * 0.02 for _ in range(n_copies)]
    cases = {}
    for impl in impls:
        if impl in ("fp16", "bf16"):
            dtype = torch.float16 if impl == "fp16" else torch.bfloat16
            copies = [w.to(dtype) for w in originals]
            cases[impl] = Case(
                impl,
                copies,
                lambda x, w, dtype=dtype: F.linear(x.to(dtype), w),
                lambda x, w: x.double() @ w.double().T,
                copies[0].numel() * copies[0].element_size(),
            )
        elif impl in ("low", "mid"):
            gear = Gear.LOW if impl == "low" else Gear.MID
            copies = [to_word_planes(pack(w)) for w in originals]
            cases[impl] = Case(
                impl,
                copies,
                lambda x, p, gear=gear, **cfg: gear_matmul(x, p, gear, cfg or None),
                lambda x, p, gear=gear: x.double() @ dequantize(to_nested(p), gear, torch.float64).T,
                copies[0].nbytes(gear),
            )
        elif impl == "high":
            cases[impl] = Case(
                impl,
                originals,
                lambda x, w, **cfg: gemv_f16(x, w, cfg or None),
                lambda x, w: x.double() @ w.double().T,
                originals[0].numel() * originals[0].element_size(),
            )
        elif impl == "int8":
            copies = []
            for w in originals:
                scale = w.float().abs().amax(1) / 127
                copies.append(((w.float() / scale[:, None]).round().to(torch.int8), scale.to(torch.float16)))
            int8_linear = torch.compile(lambda x, w8, s: F.linear(x, w8.to(x.dtype)) * s, dynamic=False)
            cases[impl] = Case(
                impl,
                copies,
                lambda x, c, f=int8_linear: f(x, c[0], c[1]),
                lambda x, c: x.double() @ (c[0].double() * c[1].double()[:, None]).T,
                sum(t.numel() * t.element_size() for t in copies[0]),
            )
    return cases


def time_calls(calls, torch) -> float:
    """Median microseconds per call: the calls captured in one CUDA graph, replayed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for call in calls[:2]:
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    graph.replay()
    times = []
    for _ in range(REPLAYS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / len(calls))
    return statistics.median(times)


def run_case(case: Case, x, torch, config: dict | None = None) -> dict:
    """Check the call against its float64 reference on fresh x, then time it (the probe
    LOADS_ONLY, whose result is not the product, is timed unchecked: its max_abs_err is None)."""
    cfg = config or {}
    y = case.call(x, case.copies[0], **cfg)
    err, finite = None, False
    if not cfg.get("LOADS_ONLY"):
        err = (y.double() - case.reference(x, case.copies[0])).abs().max().item()
        finite = bool(torch.isfinite(y).all())
    rounds = math.ceil(MIN_CALLS / len(case.copies))
    calls = [lambda c=c: case.call(x, c, **cfg) for _ in range(rounds) for c in case.copies]
    us = time_calls(calls, torch)
    return {"us": us, "tbps": case.nbytes / (us * 1e-6) / 1e12, "max_abs_err": err if finite else None}


def sweep_configs(impl: str, batch: int) -> list[dict]:
    if impl == "high":
        return [
            {"BLOCK_N": n, "BLOCK_K": k, "num_warps": w}
            for n, k, w in [(1, 1024, 4), (2, 1024, 4), (2, 512, 2), (4, 512, 4), (4, 1024, 4), (4, 1024, 8),
                            (8, 512, 4), (8, 1024, 8), (16, 256, 4), (16, 512, 8)]
        ]  # fmt: skip
    if batch == 1:
        return [{"KS": ks, "X_AHEAD": a, "PREFETCH": 0} for ks in (1, 2, 4, 8) for a in (False, True)] + [
            {"KS": ks, "X_AHEAD": a, "PREFETCH": 2} for ks in (2, 4) for a in (False, True)
        ] + [
            {"KS": ks, "X_AHEAD": False, "PREFETCH": 0, "PIN": pin} for pin, kss in [(1, (1, 2, 4, 8)), (2, (2, 4))] for ks in kss
        ] + [
            {"LOADS_ONLY": True}  # probe: the default kernel's loads without its products (triton_gemv_mma.loads_only_asm)
        ] + [
            {"KS": ks, "TMA": stages} for ks, stages in [(1, 2), (1, 3), (1, 4), (1, 6), (2, 2), (2, 3), (2, 4), (4, 2), (4, 3), (4, 4)]
        ] + [
            {"BLOCK_N": n, "BLOCK_G": g, "STAGES": st, "num_warps": w}
            for n, g, w, st in [
                (16, 4, 2, 3), (16, 4, 2, 5), (16, 8, 4, 3), (8, 8, 1, 3),
                (8, 8, 1, 5), (8, 4, 2, 4), (4, 8, 2, 4), (16, 4, 1, 3),
            ]
        ]  # fmt: skip
    return [
        {"BLOCK_M": 16, "BLOCK_N": n, "BLOCK_G": g, "STAGES": st, "num_warps": w}
        for n, g, w, st in [(32, 1, 2, 3), (16, 1, 1, 3), (16, 1, 2, 3), (32, 1, 1, 3), (32, 1, 2, 4), (32, 2, 2, 3), (64, 1, 4, 3)]
    ]


def add_limit_shares(rows: list[dict]) -> float | None:
    """Each row's `limit_share`: its TB/s over the fastest batch-1 cuBLAS fp16 read of the run,
    which is returned (None, and no shares, where fp16 did not run at batch 1)."""
    reads = [r["tbps"] for r in rows if r["impl"] == "fp16" and r["batch"] == 1]
    if not reads:
        return None
    for r in rows:
        r["limit_share"] = r["tbps"] / max(reads)
    return max(reads)


def _figure(value: float | None, spec: str) -> str:
    width = int(spec.split(".")[0])
    return "n/a".rjust(width) if value is None else format(value, spec)


def print_table(rows: list[dict], device: str) -> None:
    print(f"device {device}  date {datetime.date.today()}")
    print(f"{'shape':>12} {'batch':>5}  {'impl':<15} {'us':>9} {'vs fp16':>8} {'TB/s':>6} {'share':>6} {'max abs err':>12}")
    for r in rows:
        share = "n/a" if r.get("limit_share") is None else f"{r['limit_share']:.0%}"
        print(
            f"{r['shape']:>12} {r['batch']:>5}  {LABELS[r['impl']]:<15} {r['us']:>9.1f} "
            f"{_figure(r['speedup_vs_fp16'], '7.2f')}x {r['tbps']:>6.2f} {share:>6} {_figure(r['max_abs_err'], '12.3g')}"
        )


def main(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        raise UsageError("bench kernels needs a CUDA GPU: torch sees none")
    from gearterm.kernels import dependent_launch
    from gearterm.kernels.triton_gemv_f16 import fits as gemv_fits
    from gearterm.kernels.triton_gemv_mma import whole_steps

    shapes = [parse_shape(s) for s in (args.shape or SHAPES)]
    batches = args.batch or BATCHES
    if any(b <= 0 for b in batches):
        raise UsageError("--batch must be at least 1")
    impls = args.impl or IMPLS
    device = torch.cuda.get_device_name()
    torch.manual_seed(0)
    rows, sweeps = [], []
    for out_features, in_features in shapes:
        shape = f"{out_features}x{in_features}"
        low_bytes = out_features * in_features / 2
        n_copies = max(2, min(64, math.ceil(ROTATION_BYTES / low_bytes)))
        try:
            cases = build_cases(impls, out_features, in_features, n_copies, torch)
        except Exception as e:
            if "int8" not in impls:
                raise
            # torch.compile may be missing or broken here: the gears run without the baseline.
            print(f"int8 baseline left out at {shape}: {type(e).__name__}: {e}")
            cases = build_cases([i for i in impls if i != "int8"], out_features, in_features, n_copies, torch)
        for batch in batches:
            x = torch.randn(batch, in_features, device="cuda", dtype=torch.float16)
            results = {}
            for impl, case in cases.items():
                if impl == "high" and batch != 1:
                    continue  # one row only: more rows go to cuBLAS
                try:
                    results[impl] = run_case(case, x, torch)
                except Exception as e:
                    if impl != "int8":
                        raise
                    print(f"int8 baseline left out at {shape} batch {batch}: {type(e).__name__}: {e}")
            base = results.get("fp16", {}).get("us")
            for impl, r in results.items():
                speedup = base / r["us"] if base else None
                rows.append({"shape": shape, "batch": batch, "impl": impl, **r, "speedup_vs_fp16": speedup})
            if args.sweep:
                if not args.json:
                    for impl, r in results.items():
                        print(f"default {shape:>12} b{batch:<3} {impl:<4} {r['us']:>8.1f} us {r['tbps']:5.2f} TB/s", flush=True)
                for impl in ("low", "mid", "high"):
                    if impl not in results:  # not asked for, or not at this batch
                        continue
                    for cfg in sweep_configs(impl, batch):
                        if cfg.get("KS") and not whole_steps(in_features // 128, cfg["KS"]):
                            continue
                        if args.sweep_key and not any(key in cfg for key in args.sweep_key):
                            continue
                        if impl == "high" and not gemv_fits(x, cases[impl].copies[0], cfg):
                            continue
                        try:
                            r = run_case(cases[impl], x, torch, cfg)
                        except (RuntimeError, ValueError) as e:  # an experiment that cannot run here: say so, go on
                            print(f"sweep {shape:>12} b{batch:<3} {impl:<4} failed: {e}  {cfg}", file=sys.stderr, flush=True)
                            continue
                        sweeps.append({"shape": shape, "batch": batch, "impl": impl, "config": cfg, **r})
                        if not args.json:  # as it comes: a long sweep cut short keeps what it timed
                            err = "not checked" if cfg.get("LOADS_ONLY") else _figure(r["max_abs_err"], "9.3g")
                            print(f"sweep {shape:>12} b{batch:<3} {impl:<4} {r['us']:>8.1f} us {r['tbps']:5.2f} TB/s "
                                  f"err {err}  {cfg}", flush=True)  # fmt: skip
        del cases
        torch.cuda.empty_cache()
    limit = add_limit_shares(rows)
    out = rows + sweeps  # a sweep row names its block sizes under "config"; the default rows have none
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=1) + "\n")
    if args.json:
        print(json.dumps(out))
    else:
        print_table(rows, device)
        # The calls of a replay follow each other as a decode step's do: with dependent
        # launches each gear call's first loads overlap the call before it; cuBLAS's do not.
        print("note:", dependent_launch.describe(torch.device("cuda")))
        if limit:
            print(f"note: share: TB/s over {limit:.2f} TB/s, the fastest batch-1 cuBLAS fp16 read in this run")
    return 0
