"""`gearterm run`: one reply, headless, with a summary of gears and entropy (or JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys

from gearterm.errors import UsageError

GEARS = ("low", "mid", "high")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose and load a model; shared with the benches."""
    parser.add_argument("--model", help="model directory or Hugging Face id (default: the pocket model)")
    parser.add_argument("--backend", default="hf", help="hf (default), mlx, ollama or openai")
    parser.add_argument("--url", help="server base URL for the ollama and openai backends")
    parser.add_argument("--device", help="cpu, cuda or auto (default: cuda when available)")
    parser.add_argument("--dtype", help="float32, float16 or bfloat16 (default: float32 on CPU)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")
    parser.add_argument("--allow-pickle", action="store_true", help="load pickle .bin weights (can run code)")
    parser.add_argument(
        "--no-compile", action="store_true", help="on a GPU, skip torch.compile of the decode step (loads faster)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--gear", default="auto", help="auto (default), low, mid or high")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", action="store_true", help="one JSON object per token, then a summary line")
    parser.add_argument("--no-gate", action="store_true", help="skip the activation entropy gate (hf and mlx backends)")


def load_backend(args: argparse.Namespace, progress=None):
    """Create and load the backend the arguments name; BackendError on failure."""
    from gearterm.backends.registry import create_backend

    options = {}
    if args.backend in ("hf", "mlx"):
        options = {"trust_remote_code": args.trust_remote_code}
        options["gate"] = not getattr(args, "no_gate", False)  # only `run` has the flag
        if args.backend == "hf":
            options.update(device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)
            options["compile"] = not args.no_compile
    model = args.model
    if model is None and args.backend in ("hf", "mlx"):
        from gearterm.models import default_model

        model = default_model(None)
    if model is None:
        raise UsageError(f"the {args.backend} backend needs --model NAME (a model the server lists)")
    backend = create_backend(args.backend, model, url=args.url, **options)
    backend.load(progress)
    return backend


def terminal_progress(fraction: float, text: str) -> None:
    """A one-line progress bar on stderr while a model loads, only when a person is watching."""
    if not sys.stderr.isatty():
        return
    width = 24
    bar = "#" * round(fraction * width)
    end = "\n" if fraction >= 1 else ""
    print(f"\r\033[Kloading [{bar:<{width}}] {fraction:4.0%} {text}", end=end, file=sys.stderr, flush=True)


def generation_params(args: argparse.Namespace):
    from gearterm.backends.base import GenerationParams
    from gearterm.backends.gearbox import GearMode

    try:
        mode = GearMode(args.gear)
    except ValueError:
        raise UsageError(f"unknown gear mode {args.gear!r}: use auto, low, mid or high") from None
    try:
        return GenerationParams(
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            gear_mode=mode,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def token_json(event) -> dict:
    row = {
        "text": event.text,
        "token_id": event.token_id,
        "gear": event.gear.label,
        "entropy_bits": event.entropy_bits,
    }
    if event.gate_survival is not None:
        row["gate_survival"] = list(event.gate_survival)
    if event.entropy_source != "exact":
        row.update(
            entropy_bits_lower=event.entropy_bits_lower,
            entropy_bits_upper=event.entropy_bits_upper,
            missing_mass=event.missing_mass,
        )
    return row


def summarize(backend, tokens: list, done) -> dict:
    # Trailing text a detokenizer flushed has no forward pass behind it; Ollama's tokens have no ids.
    counted = [t for t in tokens if t.is_token]
    entropies = [t.driving_entropy for t in counted if t.driving_entropy is not None]
    n = len(counted)
    mix = {g: sum(t.gear.label == g for t in counted) / n if n else 0.0 for g in GEARS}
    # Decode speed: tokens after the first over the time after the first, so prefill is not in it.
    decode_s = done.seconds - (done.first_token_s or 0.0)
    return {
        "backend": backend.name,
        "model": backend.model_name,
        "tokens": n,
        "tok_per_s": (n - 1) / decode_s if n > 1 and decode_s > 0 else None,
        "first_token_s": done.first_token_s,
        "gear_mix": mix,
        "shifts": sum(a.gear != b.gear for a, b in zip(counted, counted[1:])),
        "mean_entropy_bits": sum(entropies) / len(entropies) if entropies else None,
        "finish": done.reason,
    }


def print_summary(s: dict) -> None:
    speed = f"{s['tok_per_s']:.1f} tok/s decode" if s["tok_per_s"] else "tok/s n/a (one token)"
    ttft = f", first token {s['first_token_s'] * 1e3:.0f} ms" if s["first_token_s"] else ""
    mix = " ".join(f"{g} {s['gear_mix'][g]:.0%}" for g in GEARS)
    entropy = "n/a" if s["mean_entropy_bits"] is None else f"{s['mean_entropy_bits']:.2f} bits"
    print(
        f"\n-- {s['tokens']} tokens ({s['finish']}), {speed}{ttft}; gear mix {mix}; "
        f"{s['shifts']} shifts; mean entropy {entropy} [{s['backend']} {s['model']}]",
        file=sys.stderr,
    )


async def _stream(backend, messages, params, on_event) -> None:
    async for event in backend.stream(messages, params):
        on_event(event)


def main(args: argparse.Namespace) -> int:
    import asyncio

    from gearterm.backends.base import BackendError, Notice, ReplyDone, TokenEvent

    if not args.prompt.strip():
        raise UsageError("the prompt is empty: pass --prompt TEXT")
    params = generation_params(args)
    try:
        backend = load_backend(args, terminal_progress)
    except BackendError as e:
        raise UsageError(str(e)) from None

    tokens: list[TokenEvent] = []
    ended: list[ReplyDone] = []

    def on_event(event) -> None:
        if isinstance(event, TokenEvent):
            tokens.append(event)
            if args.json:
                print(json.dumps(token_json(event)), flush=True)
            else:
                print(event.text, end="", flush=True)
        elif isinstance(event, Notice):
            print(f"gearterm: {event.level}: {event.text}", file=sys.stderr)
        elif isinstance(event, ReplyDone):
            ended.append(event)

    messages = [{"role": "user", "content": args.prompt}]
    try:
        asyncio.run(_stream(backend, messages, params, on_event))
    except BackendError as e:
        raise UsageError(str(e)) from None
    done = ended[-1]
    summary = summarize(backend, tokens, done)
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print()
        print_summary(summary)
    if done.reason == "error":
        print(f"gearterm: error: {done.error}", file=sys.stderr)
        return 1
    return 0
