"""`gearterm bench gate`: the activation entropy gate against the per-vector numpy + scipy +
zlib loop it replaces (speed, and survival class by class), its fast path's agreement with
exact zlib on real hidden states, and with --enforce what skipping the MLP of tokens that
fail the gate costs in perplexity. --overhead adds decode step time with the gate on and off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from gearterm.bench.quality import paragraphs_for
from gearterm.errors import UsageError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CLASSES = ("small gaussian", "one-hot", "sparse gaussian", "gaussian")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=SHARED / "models" / "stories260K-hf", help="HF model directory for real hidden states"
    )
    parser.add_argument(
        "--text",
        type=Path,
        default=SHARED / "data" / "tinystories-valid-head" / "tinystories_val.txt",
        help="UTF-8 text; paragraphs split on blank lines",
    )
    parser.add_argument("--tokens", type=int, default=4000, help="predicted tokens of real text (default 4000)")
    parser.add_argument("--vectors", type=int, default=10_000, help="synthetic vectors (default 10000)")
    parser.add_argument("--dim", type=int, default=128, help="floats per synthetic vector (default 128)")
    parser.add_argument("--device", help="device for the real model: cpu or cuda (default: cuda when available)")
    parser.add_argument("--enforce", action="store_true", help="perplexity when gated-out tokens skip the MLP")
    parser.add_argument("--overhead", action="store_true", help="decode step time with the gate on and off")
    parser.add_argument("--trace", type=Path, help="with --overhead on a GPU: write the energy counter trace here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")


def synthetic_workload(n: int, d: int, seed: int = 0):
    """The seed's workload: a quarter each of small Gaussian (x0.05), one-hot, sparse Gaussian
    (|x| < 1.8 zeroed), and the rest standard Gaussian. Returns float32 rows and class ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    q = n // 4
    small = rng.standard_normal((q, d)) * 0.05
    one_hot = np.zeros((q, d))
    one_hot[np.arange(q), rng.integers(0, d, q)] = 1.0
    sparse = rng.standard_normal((q, d))
    sparse[np.abs(sparse) < 1.8] = 0.0
    noise = rng.standard_normal((n - 3 * q, d))
    rows = np.concatenate([small, one_hot, sparse, noise]).astype(np.float32)
    classes = np.repeat(np.arange(4), [q, q, q, n - 3 * q])
    return rows, classes


def per_vector_loop(rows) -> list[bool]:
    """The straightforward version: numpy histogram, scipy entropy, zlib, one vector at a time.
    A vector numpy.histogram refuses (NaN, Inf) fails the gate."""
    import zlib

    import numpy as np
    import scipy.stats

    passed = []
    for v in rows:
        try:
            counts, _ = np.histogram(v, 64)
        except ValueError:
            passed.append(False)
            continue
        entropy = scipy.stats.entropy(counts, base=2) / np.log2(64)
        ratio = len(zlib.compress(v.tobytes(), 6)) / v.nbytes
        passed.append(bool(entropy <= 0.80 and ratio <= 0.90))
    return passed


def _cpu_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _gpu_seconds(fn, repeats: int = 100) -> float:
    """Seconds per call on the GPU, calls back to back (launch gaps included), after warm-up."""
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / repeats


def _torch_fast_passed(x):
    """The fast path in plain torch ops (no Triton): what the fused kernel must beat."""
    from gearterm.kernels.gate import byte_entropy, histogram_entropy

    return (histogram_entropy(x) <= 0.80) & (byte_entropy(x) <= 0.90)


def run_synthetic(n: int, d: int) -> dict:
    import numpy as np
    import torch

    from gearterm.kernels.gate import gate_metrics

    rows, classes = synthetic_workload(n, d)
    x = torch.from_numpy(rows)
    start = time.perf_counter()
    loop = np.array(per_vector_loop(rows))
    seconds = {"loop": time.perf_counter() - start}
    exact = gate_metrics(x, "exact").passed.numpy()
    fast = gate_metrics(x, "fast").passed.numpy()
    seconds["exact_cpu"] = _cpu_seconds(lambda: gate_metrics(x, "exact").passed, 3)
    seconds["fast_cpu"] = _cpu_seconds(lambda: gate_metrics(x, "fast").passed, 5)
    seconds["fast_gpu"] = seconds["fast_gpu_torch"] = seconds["exact_gpu"] = None
    checks = {}
    if torch.cuda.is_available():
        xg = x.cuda()
        fast_gpu = gate_metrics(xg, "fast")
        cpu_metrics = gate_metrics(x, "fast")
        checks["fast_gpu_equals_cpu"] = bool(
            torch.equal(fast_gpu.passed.cpu(), cpu_metrics.passed)
            and torch.allclose(fast_gpu.entropy.cpu(), cpu_metrics.entropy, rtol=0, atol=1e-12, equal_nan=True)
            and torch.allclose(fast_gpu.compressibility.cpu(), cpu_metrics.compressibility, rtol=0, atol=1e-12)
        )
        checks["exact_gpu_equals_loop"] = bool((gate_metrics(xg, "exact").passed.cpu().numpy() == loop).all())
        seconds["fast_gpu"] = _gpu_seconds(lambda: gate_metrics(xg, "fast").passed)
        seconds["fast_gpu_torch"] = _gpu_seconds(lambda: _torch_fast_passed(xg))
        seconds["exact_gpu"] = _gpu_seconds(lambda: gate_metrics(xg, "exact").passed, 3)

    def per_class(passed) -> list[float]:
        return [float(passed[classes == c].mean()) for c in range(4)]

    checks["exact_equals_loop"] = bool((exact == loop).all())
    return {
        "vectors": n,
        "dim": d,
        "survival": {"loop": float(loop.mean()), "exact": float(exact.mean()), "fast": float(fast.mean())},
        "per_class": {"loop": per_class(loop), "exact": per_class(exact), "fast": per_class(fast)},
        "agreement_fast_vs_exact": float((fast == exact).mean()),
        "seconds": seconds,
        "checks": checks,
        "torch_threads": torch.get_num_threads(),
    }


def layer_outputs(backend, chunks):
    """Every decoder layer's output at every position of every chunk: [layers, positions, d]."""
    import torch

    from gearterm.backends.gearbox import GearMode

    layers = backend.model.layers
    seen = [[] for _ in layers]

    def keep(i):
        def hook(module, args, output):
            seen[i].append(output.detach())  # [positions, d]

        return hook

    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    try:
        for ids in chunks:
            backend.teacher_force(ids, GearMode.HIGH)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([torch.cat(states) for states in seen])


def run_real(backend, chunks) -> dict:
    from gearterm.kernels.gate import gate_metrics

    hidden = layer_outputs(backend, chunks)
    layers, positions, d = hidden.shape
    flat = hidden.reshape(layers * positions, d)
    exact = gate_metrics(flat, "exact").passed.reshape(layers, positions).cpu()
    fast = gate_metrics(flat, "fast").passed.reshape(layers, positions).cpu()
    return {
        "vectors": layers * positions,
        "positions": positions,
        "dim": d,
        "agreement_fast_vs_exact": float((fast == exact).float().mean()),
        "agreement_per_layer": (fast == exact).float().mean(1).tolist(),
        "survival_per_layer": {"exact": exact.float().mean(1).tolist(), "fast": fast.float().mean(1).tolist()},
    }


def perplexity_with_mlp_gate(backend, chunks, mode: str | None) -> tuple[float, float]:
    """Teacher-forced perplexity when, in every layer, tokens whose hidden state entering the
    MLP (the residual stream after attention) fails the gate skip the MLP (it adds zero).
    mode None runs every MLP. Returns (perplexity, fraction of MLP calls skipped)."""
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import perplexity
    from gearterm.kernels.gate import gate_metrics

    layers = backend.model.layers
    handles, kept = [], []
    if mode is not None:
        for layer in layers:
            decision = {}

            def decide(module, args, decision=decision):
                decision["keep"] = gate_metrics(args[0], mode).passed  # args[0]: [positions, d]
                kept.append(decision["keep"].float().mean().item())

            def skip(module, args, output, decision=decision):
                return output * decision["keep"][:, None].to(output.dtype)

            handles += [
                layer.mlp_norm.register_forward_pre_hook(decide),
                layer.mlp.register_forward_hook(skip),
            ]
    logprobs = []
    try:
        for ids in chunks:
            logprobs += backend.teacher_force(ids, GearMode.HIGH).logprobs
    finally:
        for h in handles:
            h.remove()
    return perplexity(logprobs), 1 - statistics.mean(kept) if kept else 0.0


def run_enforce(backend, chunks) -> dict:
    ppl_off, _ = perplexity_with_mlp_gate(backend, chunks, None)
    ppl_on, skipped = perplexity_with_mlp_gate(backend, chunks, "fast")
    ppl_on_exact, skipped_exact = perplexity_with_mlp_gate(backend, chunks, "exact")
    return {
        "ppl_off": ppl_off,
        "ppl_on": ppl_on,
        "mlp_skipped": skipped,
        "ppl_on_exact": ppl_on_exact,
        "mlp_skipped_exact": skipped_exact,
    }


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f} ms"


def print_tables(result: dict) -> None:
    s = result["synthetic"]
    print(f"synthetic: {s['vectors']} x {s['dim']} float32 vectors, torch threads {s['torch_threads']}")
    print(f"{'path':<28} {'time':>12} {'vs loop':>9}")
    names = {
        "loop": "per-vector numpy+scipy+zlib",
        "exact_cpu": "exact, CPU",
        "fast_cpu": "fast, CPU",
        "exact_gpu": "exact, GPU (+ zlib on CPU)",
        "fast_gpu": "fast, GPU (fused kernel)",
        "fast_gpu_torch": "fast, GPU (torch ops)",
    }
    loop = s["seconds"]["loop"]
    for key, name in names.items():
        t = s["seconds"][key]
        print(f"{name:<28} {_ms(t):>12} {'' if t is None else f'{loop / t:,.0f}x':>9}")
    print(f"\n{'survival':<10} {'overall':>8} " + " ".join(f"{c:>16}" for c in CLASSES))
    for path in ("loop", "exact", "fast"):
        cells = " ".join(f"{p:>16.2%}" for p in s["per_class"][path])
        print(f"{path:<10} {s['survival'][path]:>8.2%} {cells}")
    print(f"fast agrees with exact on {s['agreement_fast_vs_exact']:.2%} of vectors; checks: {s['checks']}")
    r = result["real"]
    print(
        f"\nreal hidden states: {result['model']} ({result['dtype']} on {result['device']}), "
        f"{r['positions']} positions x {len(r['agreement_per_layer'])} layers, d={r['dim']}"
    )
    print(f"{'layer':<6} {'survival exact':>15} {'survival fast':>14} {'agreement':>10}")
    for i, agree in enumerate(r["agreement_per_layer"]):
        print(f"{i:<6} {r['survival_per_layer']['exact'][i]:>15.2%} {r['survival_per_layer']['fast'][i]:>14.2%} {agree:>10.2%}")
    print(f"fast agrees with exact on {r['agreement_fast_vs_exact']:.2%} of {r['vectors']} hidden states")
    e = result["enforce"]
    if e is not None:
        print(f"\nenforced (gated-out tokens skip the MLP), {result['tokens']} predicted tokens:")
        print(f"  gate off                 ppl {e['ppl_off']:.4f}")
        print(f"  gate on, fast decisions  ppl {e['ppl_on']:.4f}  ({e['ppl_on'] / e['ppl_off'] - 1:+.1%}), {e['mlp_skipped']:.1%} of MLP calls skipped")
        print(f"  gate on, exact decisions ppl {e['ppl_on_exact']:.4f}  ({e['ppl_on_exact'] / e['ppl_off'] - 1:+.1%}), {e['mlp_skipped_exact']:.1%} skipped")
    if result.get("overhead") is not None:
        from gearterm.bench.gate_overhead import print_overhead

        print_overhead(result["overhead"])


def main(args: argparse.Namespace) -> int:
    if args.vectors < 4 or args.dim < 1:
        raise UsageError("--vectors must be at least 4 (one per class) and --dim at least 1")
    for path, what in ((args.model, "--model"), (args.text, "--text")):
        if not path.exists():
            raise UsageError(f"{what} {path} does not exist (the defaults are in ../shared beside the checkout)")
    try:
        text = args.text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read --text {args.text}: {e}") from None
    try:
        import scipy  # noqa: F401  (the per-vector baseline is numpy + scipy + zlib)
    except ImportError:
        raise UsageError("bench gate times the seed's scipy loop: pip install scipy (or gearterm[dev])") from None
    from gearterm.backends.hf import HFBackend

    result = {"synthetic": run_synthetic(args.vectors, args.dim)}
    backend = HFBackend(str(args.model), device=args.device, gate=False)
    backend.load()
    chunks = paragraphs_for(backend, text, args.tokens)
    if not chunks:
        raise UsageError(f"{args.text} has no paragraph of two or more tokens")
    dtype = str(backend.model.get_input_embeddings().weight.dtype).removeprefix("torch.")
    result.update(model=str(args.model), tokens=sum(len(c) - 1 for c in chunks), device=str(backend.device), dtype=dtype)
    result["real"] = run_real(backend, chunks)
    result["enforce"] = run_enforce(backend, chunks) if args.enforce else None
    result["overhead"] = None
    if args.overhead:
        from gearterm.bench.gate_overhead import run_overhead

        result["overhead"] = run_overhead(args.model, args.device, args.trace)
    if args.json:
        print(json.dumps(result))
    else:
        print_tables(result)
    return 0
