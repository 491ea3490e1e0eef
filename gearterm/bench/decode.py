"""`gearterm bench decode`: tokens/s, shift latency, memory and joules per token of each gear
mode at batch 1, beside plain transformers `generate` in the same process, and the share of
its weight-read limit each reaches (bench.step_bytes). `--context-sweep` times the high and the
low gear with the cache filled to each length instead (bench.context_sweep).

`--shape llama3-8b` (or another named shape) builds a Llama from its config with random
weights directly on the GPU: no download. `--model PATH` decodes a real model instead.
The geared runs go through HFBackend's own generation loop (CUDA graph per gear, one host
sync per token), greedy, for a fixed number of tokens (end-of-sequence is ignored).

Random weights make a near-uniform next-token distribution (15.8 of 17 bits), which the
anomaly guard pins to the high gear; the random LM head is therefore scaled to logits of
standard deviation 6.5, whose entropies (about 1 to 5 bits) cross the policy's thresholds
the way a real model's do, so auto mode shifts. Speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import statistics
import time
from pathlib import Path

from gearterm.errors import UsageError

SHAPES = {
    "llama3-8b": dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
    ),
    "llama3-1b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, rope_theta=500000.0,
        max_position_embeddings=8192, tie_word_embeddings=True,
    ),
    "tiny": dict(
        hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=4, vocab_size=4096, max_position_embeddings=2048,
    ),
}  # fmt: skip
MODES = ("high", "mid", "low", "auto", "lossless")
NO_LIMIT = dict.fromkeys(("bytes_per_step", "tbps", "limit_tok_per_s", "limit_share"))
LOGIT_STD = 6.5
BASELINE = "transformers generate"
# The default-off experiments a run may have on, by their environment variables (read at import).
EXPERIMENTS = ("GEARTERM_QKV_EPILOGUE", "GEARTERM_GEMV_TMA", "GEARTERM_GEMV_PIN")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--shape", choices=sorted(SHAPES), help="a Llama config with random weights (default llama3-8b)")
    source.add_argument("--model", help="a model directory or Hugging Face id, instead of random weights")
    parser.add_argument("--tokens", type=int, default=256, help="tokens decoded per mode (default 256)")
    parser.add_argument("--prompt-tokens", type=int, default=32, help="random prompt length for --shape (default 32)")
    parser.add_argument("--baseline-tokens", type=int, default=64, help="tokens for plain generate (default 64)")
    parser.add_argument(
        "--energy-seconds", type=float, default=3.0, help="decode at least this long per mode for joules (default 3)"
    )
    parser.add_argument(
        "--context", type=int, help="KV cache positions (default: prompt + tokens, rounded up to 256)"
    )
    parser.add_argument(
        "--context-sweep", metavar="LENGTHS",
        help="instead of the modes table: high and low gear with the cache filled to each length, "
        "and the prefill's tokens/s at each, e.g. 512,2048,4096,16384,32768",
    )  # fmt: skip
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the plumbing on a tiny shape")
    parser.add_argument("--gate", action="store_true", help="activation entropy gate on (compare with a run without)")
    parser.add_argument(
        "--no-compile", action="store_true", help="capture the decode step's graphs without torch.compile first"
    )
    parser.add_argument(
        "--profile", action="store_true",
        help="also split each gear's step time by kernel kind (gear GEMVs, cuBLAS, attention, the rest) with torch.profiler",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list instead of the table")
    parser.add_argument("--json-out", type=Path, help="also write the rows as one JSON list to this file")


class IdsTokenizer:
    """What the generation loop asks of a tokenizer, for a model that has none: ids as text."""

    eos_token_id = None

    def decode(self, ids, skip_special_tokens=True) -> str:
        return "".join(f"<{i}>" for i in ids)


def random_llama(shape: str, dtype, device):
    """A LlamaForCausalLM of a named shape, initialized on the device (normal, std 0.02)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, LOGIT_STD / math.sqrt(config.hidden_size))
    model.generation_config.eos_token_id = None
    return model.eval()


def real_model(name: str, dtype, device):
    """A model from a directory or the Hugging Face cache, on the device, not yet geared."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gearterm.backends.base import BackendError
    from gearterm.backends.model_files import check_model_dir, resolve_model_dir

    try:
        path = resolve_model_dir(name)
        check_model_dir(path, allow_pickle=False, trust_remote_code=False)
    except BackendError as e:
        raise UsageError(str(e)) from None
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True, use_kernels=False)
    return model.to(device).eval(), tokenizer


def tensor_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def baseline_generate(model, prompt: list[int], tokens: int, torch) -> dict:
    """Plain `generate`, greedy, dynamic cache, eager: the steady per-token rate."""
    from transformers import GenerationConfig
    from transformers.generation.streamers import BaseStreamer

    class Stamps(BaseStreamer):
        def __init__(self):
            self.times = []

        def put(self, value):  # first the prompt, then each new token after its host sync
            self.times.append(time.perf_counter())

        def end(self):
            pass

    ids = torch.tensor([prompt], device=model.device)
    config = GenerationConfig(
        max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)  # warm-up
    stamps = Stamps()
    model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config, streamer=stamps)
    decoded = stamps.times[1:]
    seconds = decoded[-1] - decoded[0]
    return {"tokens": len(decoded), "tok_per_s": (len(decoded) - 1) / seconds}


def decode(backend, prompt: list[int], tokens: int, mode: str, meter=None) -> dict:
    """One reply through HFBackend's loop. Decision-to-launch latency: from the policy's
    choice of the next gear (the backend's `decided_at`) to the launch of the step it chose,
    split into steps that shift gear and steps that stay. On the GPU the loop launches the
    next step before it hands the token over, so this excludes the caller's work."""
    from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.lossless_reply import cycle_figures

    params = GenerationParams(max_tokens=tokens, temperature=0.0, gear_mode=GearMode(mode))
    arrivals, events, shift_us, stay_us = [], [], [], []
    for event in backend._generate(prompt, params):
        now = time.perf_counter()
        if isinstance(event, ReplyDone):
            first_token_s = event.first_token_s
            lossless = cycle_figures(event.stats)
        if not isinstance(event, TokenEvent) or not event.is_token:
            continue
        launched = getattr(backend.decoder, "launched_at", None)
        if launched is not None and launched >= backend.decided_at:  # this token's decision launched a step
            latency = (launched - backend.decided_at) * 1e6
            (shift_us if event.next_gear != event.gear else stay_us).append(latency)
        arrivals.append(now)
        events.append(event)
        if meter is not None:
            meter.record_token(event.gear)
    seconds = arrivals[-1] - arrivals[0]
    return {
        "tokens": len(events),
        "tok_per_s": (len(events) - 1) / seconds,
        "first_token_s": first_token_s,
        "shift_us": statistics.median(shift_us) if shift_us else None,
        "stay_us": statistics.median(stay_us) if stay_us else None,
        "shifts": sum(e.next_gear != e.gear for e in events[:-1]),
        "gear_mix": {g: sum(e.gear.label == g for e in events) / len(events) for g in ("low", "mid", "high")},
        "lossless": lossless,  # acceptance, accepted per verify pass, mean draft k; None in other modes
    }


def ready_for_replays(decoder, prompt: list[int], steps: int) -> int:
    """Read `prompt` into a fresh cache and make room for up to `steps` captured steps replayed
    back to back; returns the steps that fit."""
    steps = min(steps, decoder.max_cache_len - len(prompt))
    decoder.read_prompt(prompt)
    decoder.length += steps  # the replays advance the cache: keep the host's count true
    decoder.feed(decoder.token)  # as the generation loop does before each step
    return steps


def graph_step_ms(backend, prompt: list[int], gear, steps: int = 64) -> float | None:
    """GPU time of one decode step alone: the gear's captured graphs replayed back to back
    over a fresh cache, with no host sync between steps (so their launches overlap the step
    before). ms/token minus this is what each token spends outside the step: the sync, the
    host loop, and the GPU waiting for the next step's launch."""
    import torch

    decoder = backend.decoder
    if not hasattr(decoder, "graphs"):
        return None
    steps = ready_for_replays(decoder, prompt, steps)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        decoder.replay(gear)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / steps


def profiled_split(backend, prompt: list[int], gear, steps: int = 32) -> dict:
    """bench.step_split of the gear's captured step, over a fresh cache as graph_step_ms sets it."""
    from gearterm.bench.step_split import step_split

    steps = ready_for_replays(backend.decoder, prompt, steps)
    return step_split(backend.decoder, gear, steps)


def energy(backend, prompt: list[int], tokens: int, mode: str, seconds: float, meter) -> dict:
    """Joules per token from the energy counter over a window of whole replies >= `seconds`."""
    with meter.window() as window:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            decode(backend, prompt, tokens, mode, meter)
    return {
        "joules_per_token": window.joules_per_token,
        "energy_window_s": window.seconds,
        "energy_tokens": sum(window.tokens.values()),
        "energy_note": window.note or None,
    }


def print_table(result: dict) -> None:
    from gearterm.backends.lossless_reply import drafts_named
    from gearterm.bench.step_bytes import BANDWIDTH_METHOD

    print(f"device {result['device']}  date {result['date']}  model {result['model']} ({result['dtype']})")
    print(
        f"prompt {result['prompt_tokens']} tokens, {result['tokens']} decoded per mode, batch 1, greedy, "
        f"KV cache {result['context']} positions"
    )
    print(
        f"{'mode':<32} {'tok/s':>7} {'ms/token':>9} {'step ms':>8} {'shift us':>9} {'stay us':>8} {'GPU GB':>7} "
        f"{'J/token':>8} {'J window':>14} {'gear mix l/m/h':>15} {'shifts':>6} {'GB/step':>7} {'TB/s':>5} "
        f"{'limit':>6} {'share':>5}"
    )

    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    for r in result["rows"]:
        window = f"{r['energy_window_s']:.1f}s/{r['energy_tokens']}t" if r.get("energy_window_s") else "n/a"
        mix = "/".join(f"{r['gear_mix'][g]:.0%}" for g in ("low", "mid", "high")) if r.get("gear_mix") else ""
        print(
            f"{r['mode']:<32} {r['tok_per_s']:>7.1f} {r['ms_per_token']:>9.2f} {fmt(r.get('graph_ms'), '.2f'):>8} "
            f"{fmt(r.get('shift_us'), '.1f'):>9} "
            f"{fmt(r.get('stay_us'), '.1f'):>8} {r['gpu_mem_gb']:>7.2f} {fmt(r.get('joules_per_token'), '.3f'):>8} "
            f"{window:>14} {mix:>15} {fmt(r.get('shifts'), 'd'):>6} {fmt(r['bytes_per_step'] and r['bytes_per_step'] / 1e9, '.2f'):>7} "
            f"{fmt(r['tbps'], '.2f'):>5} {fmt(r['limit_tok_per_s'], '.0f'):>6} {fmt(r['limit_share'], '.0%'):>5}"
        )
    m = result["memory"]
    print(
        f"weights: 16-bit model {m['model_16bit_gb']:.2f} GB; all gears resident {m['all_gears_gb']:.2f} GB "
        f"({m['all_gears_vs_16bit']:.2f}x); allocated with KV cache and graphs {m['allocated_gb']:.2f} GB"
    )
    print(
        f"limit: the tokens/s of a step that reads its bytes (GB/step: the gear's weights, the 16-bit rest, the "
        f"LM head and the KV cache filled; auto by its gear mix) at {result['bandwidth_tbps']:.2f} TB/s, "
        f"{BANDWIDTH_METHOD}; share: tok/s over the limit"
    )
    for r in result["rows"]:
        if c := r.get("lossless"):
            print(f"lossless: {c['acceptance']:.0%} of {drafts_named(c)} kept, "
                  f"{c['accepted_per_verify_pass']:.2f} accepted per verify pass, mean draft k {c['mean_draft']:.2f}")
    for note in result["notes"]:
        print(f"note: {note}")


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.hf import HFBackend
    from gearterm.bench.context_sweep import parse_lengths
    from gearterm.bench.step_bytes import kv_bytes_per_position, lm_head_read_tbps, read_rates, weight_bytes
    from gearterm.kernels import dependent_launch, matmul
    from gearterm.kernels.gear import Gear

    for name in ("tokens", "prompt_tokens", "baseline_tokens"):
        if getattr(args, name) < 2:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 2")
    lengths = parse_lengths(args.context_sweep) if args.context_sweep else None
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("bench decode needs a CUDA GPU (torch sees none); --device cpu runs the plumbing only")
    dtype = getattr(torch, args.dtype)
    notes = []
    if args.model:
        model, tokenizer = real_model(args.model, dtype, device)
        name = args.model
        prompt = tokenizer("Once upon a time, in a quiet village by the sea, there lived")["input_ids"]
    else:
        name = f"random {args.shape or 'llama3-8b'} weights"
        model, tokenizer = random_llama(args.shape or "llama3-8b", dtype, device), IdsTokenizer()
        generator = torch.Generator().manual_seed(1)
        prompt = torch.randint(model.config.vocab_size, (args.prompt_tokens,), generator=generator).tolist()
    weights_16bit = tensor_bytes(model)

    baseline = None if lengths else baseline_generate(model, prompt, args.baseline_tokens, torch)

    # The cache holds what the run fills, as the app's is sized to its context: transformers'
    # baseline attends over the whole of it at every step.
    needed = (lengths[-1] if lengths else len(prompt)) + args.tokens
    if args.context and args.context < needed:
        raise UsageError(f"--context {args.context} holds fewer than the {needed} positions this run fills")
    context = args.context or -(-needed // 256) * 256
    model.config.max_position_embeddings = context
    backend = HFBackend(name, device=str(device), gate=args.gate, compile=not args.no_compile)
    start = time.perf_counter()
    backend.attach(model, tokenizer)
    if device.type == "cuda":
        step = "plain" if args.no_compile else "compiled (torch.compile)"
        notes.append(f"decode step {step}; gearing and capture took {time.perf_counter() - start:.0f} s")
        notes.append(dependent_launch.describe(device))
        which = "gearterm's own" if matmul.own_high_gemv(device) else "cuBLAS (F.linear)"
        notes.append(f"the high gear's batch-1 GEMV: {which} (GEARTERM_HIGH_GEMV={matmul.HIGH_GEMV or 'unset'})")
    on = [f"{name}={os.environ[name]}" for name in EXPERIMENTS if os.environ.get(name, "") not in ("", "0")]
    notes.append(f"experiments on: {', '.join(on)}" if on else f"experiments on: none ({', '.join(EXPERIMENTS)} unset)")
    backend.eos_ids = set()  # a fixed number of tokens per mode
    del model  # its weights now live in the backend's decoder, geared; the rest is freed
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    weights_all = backend.memory_bytes()
    allocated = torch.cuda.memory_allocated() if device.type == "cuda" else weights_all
    bandwidth = lm_head_read_tbps(backend.model)
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    if lengths:
        from gearterm.bench.context_sweep import print_sweep, sweep

        rows = sweep(backend, lengths, args.tokens, bandwidth)
        if args.json_out:
            args.json_out.write_text(json.dumps(rows, indent=1) + "\n")
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"device {device_name}  date {datetime.date.today()}  model {name} ({args.dtype})")
            print_sweep(rows, args.tokens, backend.max_positions)
            for note in notes:
                print(f"note: {note}")
        return 0
    weights, per_position = weight_bytes(backend.model), kv_bytes_per_position(backend.model)
    kv_bytes = per_position * (len(prompt) + args.tokens / 2)  # a step's keys and values, on average

    from gearterm.telemetry.power import PowerMeter

    meter = PowerMeter(interval_s=0.1).start() if device.type == "cuda" else None
    if meter is None or meter.unavailable or meter.energy_unavailable:
        notes.append(f"joules n/a: {meter.unavailable or meter.energy_unavailable if meter else 'no GPU'}")
    rows = [
        {
            "mode": f"{BASELINE} ({args.dtype})",
            "tok_per_s": baseline["tok_per_s"],
            "ms_per_token": 1e3 / baseline["tok_per_s"],
            "shift_us": None,
            "gpu_mem_gb": weights_16bit / 1e9,
            "joules_per_token": None,
            "tokens": baseline["tokens"],
            **read_rates(weights[Gear.HIGH] + kv_bytes, baseline["tok_per_s"], bandwidth),
        }
    ]
    for mode in MODES:
        decode(backend, prompt, args.tokens, mode)  # warm-up: first replies pay one-time costs
        run = decode(backend, prompt, args.tokens, mode)
        # auto reads each gear's weights for its share of the steps
        step_bytes = sum(run["gear_mix"][g.label] * weights[g] for g in Gear) + kv_bytes
        row = {
            "mode": mode,
            "tok_per_s": run["tok_per_s"],
            "ms_per_token": 1e3 / run["tok_per_s"],
            "graph_ms": graph_step_ms(backend, prompt, Gear[mode.upper()]) if mode in ("low", "mid", "high") else None,
            "shift_us": run["shift_us"],
            "gpu_mem_gb": allocated / 1e9,
            "joules_per_token": None,
            "weights_vs_16bit": weights_all / weights_16bit,
            **{k: run[k] for k in ("stay_us", "shifts", "gear_mix", "tokens", "lossless")},
            # a lossless token is not one step's read (drafts and verify passes): no byte limit
            **(NO_LIMIT if mode == "lossless" else read_rates(step_bytes, run["tok_per_s"], bandwidth)),
        }
        if meter is not None and not (meter.unavailable or meter.energy_unavailable):
            row.update(energy(backend, prompt, args.tokens, mode, args.energy_seconds, meter))
        rows.append(row)
    if meter is not None:
        meter.stop()
    splits = {}
    if args.profile and hasattr(backend.decoder, "graphs"):
        from gearterm.bench.step_split import describe

        for gear in (Gear.HIGH, Gear.MID, Gear.LOW):
            splits[gear.label] = profiled_split(backend, prompt, gear)
            notes.append(describe(gear.label, splits[gear.label]))
    result = {
        "device": device_name,
        "date": str(datetime.date.today()),
        "model": name,
        "dtype": args.dtype,
        "prompt_tokens": len(prompt),
        "tokens": args.tokens,
        "context": backend.max_positions,
        "bandwidth_tbps": bandwidth,
        "rows": rows,
        "memory": {
            "model_16bit_gb": weights_16bit / 1e9,
            "all_gears_gb": weights_all / 1e9,
            "all_gears_vs_16bit": weights_all / weights_16bit,
            "allocated_gb": allocated / 1e9,
        },
        "notes": notes,
        "step_split_ms": splits,
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1) + "\n")
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(result)
    return 0
