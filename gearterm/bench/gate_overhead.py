"""What leaving the activation entropy gate on costs in decode (part of `gearterm bench gate
--overhead`): step time with the gate on and off for the real tiny model through HFBackend,
and on a GPU for the Llama-3-8B shape (random bf16 weights, eager decode), plus the gate's
cost inside a CUDA graph against the 8B step's weight-read floor, and J/token on and off."""

from __future__ import annotations

import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

from gearterm.bench.decode import SHAPES

STORY = [{"role": "user", "content": "Once upon a time"}]
LLAMA3_8B = SHAPES["llama3-8b"]
READ_BANDWIDTH = 3.07e12  # bytes/s, H100 tensor-sum read bandwidth (DESIGN.md reference figures)


def tiny_model(model: Path, device: str | None, rounds: int = 3, tokens: int = 128) -> dict:
    """Median step time of the real model through HFBackend, gate on and off, runs interleaved."""
    from gearterm.backends.base import GenerationParams, TokenEvent
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend

    backends = {"off": HFBackend(str(model), device=device, gate=False), "on": HFBackend(str(model), device=device)}
    for backend in backends.values():
        backend.load()
    params = GenerationParams(max_tokens=tokens, gear_mode=GearMode.HIGH)
    steps = {"off": [], "on": []}
    for _ in range(rounds):
        for name, backend in backends.items():
            events = [e for e in backend.generate(STORY, params) if isinstance(e, TokenEvent) and e.token_id is not None]
            steps[name] += [e.step_ms for e in events[1:]]  # the first step holds the prefill
    off, on = statistics.median(steps["off"]), statistics.median(steps["on"])
    return {
        "model": str(model),
        "device": str(backends["on"].device),
        "steps": len(steps["on"]),
        "step_ms_off": off,
        "step_ms_on": on,
        "overhead": on / off - 1,
    }


def _graph_replay_us(fn, replays: int = 2000) -> float:
    """Microseconds per replay of `fn` captured as a CUDA graph, replays back to back."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    for _ in range(10):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / replays


def gate_in_graph(layers: int, d: int) -> dict:
    """The tap's per-layer copies plus the gate and the scalars' concatenation, captured as in a
    graphed decode step, against the same graph without them."""
    import torch

    from gearterm.kernels.gate import gate_passed

    outputs = [torch.randn(1, 1, d, dtype=torch.bfloat16, device="cuda") for _ in range(layers)]
    last_hidden = torch.zeros(layers, d, dtype=torch.bfloat16, device="cuda")
    scalars = torch.randn(4, device="cuda")

    def without_gate():
        return scalars.clone()

    def with_gate():
        for row, out in enumerate(outputs):
            last_hidden[row].copy_(out[0, -1])
        return torch.cat([scalars, gate_passed(last_hidden).float()])

    base, gated = _graph_replay_us(without_gate), _graph_replay_us(with_gate)
    return {"graph_us_without": base, "graph_us_with": gated, "gate_us": gated - base}


def llama8b(steps: int = 48, rounds: int = 5, meter=None) -> dict:
    """Eager decode of the Llama-3-8B shape (random bf16 weights, dynamic cache), one host sync
    per step as in HFBackend, with the gate (tap + fused kernel) on and off, interleaved after
    one untimed round (the GPU's clocks and cuBLAS warm up over the first seconds)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from gearterm.backends.decoder_weights import build_decoder
    from gearterm.backends.hf import EagerDecoder
    from gearterm.backends.hidden_tap import HiddenStateTap
    from gearterm.kernels.gate import gate_passed

    config = LlamaConfig(**LLAMA3_8B)
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = build_decoder(config, LlamaForCausalLM(config).state_dict(), torch.bfloat16, "cuda")
    finally:
        torch.set_default_dtype(default_dtype)
    layers = model.layers
    decoder = EagerDecoder(model, 2048)
    prompt = list(range(1, 33))
    times = {"off": [], "on": []}
    energy = {"off": [], "on": []}

    def phase(name: str, record: bool = True) -> None:
        tap = HiddenStateTap(layers, config.hidden_size, torch.bfloat16, torch.device("cuda")) if name == "on" else None
        token = decoder.prefill(prompt)[-1].argmax(-1)
        token.item()
        with meter.window() if meter is not None and record else nullcontext() as window:
            for _ in range(steps):
                start = time.perf_counter()
                token = decoder.step(token)[0].argmax(-1)
                scalars = token.float()[None]
                if tap is not None:
                    scalars = torch.cat([scalars, gate_passed(tap.last_hidden).float()])
                scalars.tolist()
                if record:
                    times[name].append(time.perf_counter() - start)
                if meter is not None and record:
                    meter.record_token(f"gate {name}")
        if window is not None:
            energy[name].append((window.joules, window.seconds, steps))
        if tap is not None:
            tap.remove()

    phase("off", record=False)
    phase("on", record=False)
    for _ in range(rounds):
        phase("off")
        phase("on")
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    weights_read = sum(p.numel() * p.element_size() for p in model.parameters()) - model.embed.weight.nbytes
    result = {
        "shape": "Llama-3-8B (random bf16 weights)",
        "steps": len(times["on"]),
        "eager_step_ms_off": off * 1e3,
        "eager_step_ms_on": on * 1e3,
        "eager_overhead": on / off - 1,
        "weight_read_floor_ms": weights_read / READ_BANDWIDTH * 1e3,
    }
    if meter is not None and all(j is not None for j, _, _ in energy["on"] + energy["off"]):
        for name in ("off", "on"):
            joules = sum(j for j, _, _ in energy[name])
            result[f"joules_per_token_{name}"] = joules / sum(n for _, _, n in energy[name])
            result[f"energy_windows_{name}"] = [{"joules": j, "seconds": s, "tokens": n} for j, s, n in energy[name]]
    del model, decoder
    torch.cuda.empty_cache()
    return result


def run_overhead(model: Path, device: str | None, trace: Path | None) -> dict:
    import torch

    from gearterm.kernels.gate import gate_passed

    result = {"tiny": tiny_model(model, device), "llama8b": None, "graph": None, "gate_eager_us_8b": None}
    if not torch.cuda.is_available():
        return result
    from gearterm.telemetry.power import PowerMeter

    x = torch.randn(LLAMA3_8B["num_hidden_layers"], LLAMA3_8B["hidden_size"], dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        gate_passed(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(200):
        gate_passed(x)
    launch_us = (time.perf_counter() - start) / 200 * 1e6
    torch.cuda.synchronize()
    result["gate_eager_us_8b"] = {"host_launch_us": launch_us}
    result["graph"] = gate_in_graph(LLAMA3_8B["num_hidden_layers"], LLAMA3_8B["hidden_size"])
    with PowerMeter() as meter:
        result["llama8b"] = llama8b(meter=meter)
        result["power"] = str(meter.reading())
        if trace is not None and not meter.unavailable:
            samples = [{"seconds": s.seconds, "joules": s.joules, "tokens": dict(s.tokens)} for s in meter.trace()]
            trace.write_text(json.dumps({"interval_s": meter.interval_s, "samples": samples}))
    floor = result["llama8b"]["weight_read_floor_ms"]
    result["graph"]["gate_share_of_floor_step"] = result["graph"]["gate_us"] / 1e3 / floor
    return result


def print_overhead(o: dict) -> None:
    t = o["tiny"]
    print(f"\ngate overhead in decode, {t['model']} on {t['device']} ({t['steps']} steps each):")
    print(f"  step {t['step_ms_off']:.3f} ms gate off, {t['step_ms_on']:.3f} ms gate on: {t['overhead']:+.2%}")
    if o["llama8b"] is None:
        print("  Llama-3-8B shape: n/a — no CUDA GPU")
        return
    b, g = o["llama8b"], o["graph"]
    print(f"  {b['shape']}, eager, {b['steps']} steps each: {b['eager_step_ms_off']:.2f} ms off, {b['eager_step_ms_on']:.2f} ms on: {b['eager_overhead']:+.2%}")
    print(f"  gate on [32, 4096] bf16: {o['gate_eager_us_8b']['host_launch_us']:.1f} us host time per call (eager)")
    print(
        f"  in a CUDA graph: tap copies + gate {g['gate_us']:.1f} us per step "
        f"({g['graph_us_without']:.1f} -> {g['graph_us_with']:.1f} us), "
        f"{g['gate_share_of_floor_step']:.2%} of the {b['weight_read_floor_ms']:.2f} ms weight-read floor of one step"
    )
    if "joules_per_token_on" in b:
        print(f"  energy: {b['joules_per_token_off']:.3f} J/token gate off, {b['joules_per_token_on']:.3f} J/token gate on  [{o['power']}]")
