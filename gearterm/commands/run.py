"""`gearterm run`: one reply, headless, with a summary of gears and entropy (or JSON lines)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gearterm.commands import settings
from gearterm.errors import UsageError, one_line

GEARS = ("low", "mid", "high")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings.add_arguments(parser)
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the user message; - reads it from standard input")
    prompt.add_argument("--prompt-file", metavar="PATH", type=Path, help="read the user message from a UTF-8 text file")
    parser.add_argument("--json", action="store_true", help="one JSON object per token, then a summary line")


def read_prompt(args: argparse.Namespace) -> str:
    """The user message from --prompt, standard input (--prompt -) or --prompt-file, as UTF-8."""
    if args.prompt_file is not None:
        where = f"--prompt-file {args.prompt_file}"
        try:
            data = args.prompt_file.read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {where}: {e.strerror or e}") from None
    elif args.prompt == "-":
        where, data = "standard input", sys.stdin.buffer.read()
    else:
        # Python decodes argv with surrogateescape: bytes that are not UTF-8 come back as they were.
        where, data = "--prompt", os.fsencode(args.prompt)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{where} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): pass the prompt as UTF-8"
        ) from None
    if not text.strip():
        raise UsageError("the prompt is empty: pass text with --prompt TEXT, --prompt - or --prompt-file PATH")
    return text


def load_backend(config, progress=None):
    """Create and load the backend `config` names, as the app would at startup; BackendError on failure."""
    from gearterm.app.backend_choices import create_from_entry, startup_entry

    backend = create_from_entry(startup_entry(config), config)
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


def generation_params(config):
    """The reply's parameters; the settings were checked when the config and flags were read."""
    from gearterm.backends.base import GenerationParams
    from gearterm.backends.draft_choice import parse_draft_gear
    from gearterm.backends.gearbox import GearMode

    g = config.generation
    return GenerationParams(
        g.max_tokens, g.temperature, g.top_p, g.seed, GearMode(config.gear),
        lossless_draft=parse_draft_gear(g.lossless_draft), lossless_max_draft=g.lossless_max_draft,
    )  # fmt: skip


def token_json(event) -> dict:
    row = {
        "text": event.text,
        "token_id": event.token_id,
        "gear": event.gear.label,
        "entropy_bits": event.entropy_bits,
    }
    if event.gate_survival is not None:
        row["gate_survival"] = list(event.gate_survival)
    if event.kept_from is not None:  # lossless mode: a verified draft token, or the high gear's own
        row["kept_from"] = event.kept_from
    if event.entropy_source != "exact":
        row.update(
            entropy_bits_lower=event.entropy_bits_lower,
            entropy_bits_upper=event.entropy_bits_upper,
            missing_mass=event.missing_mass,
        )
    return row


def summarize(backend, tokens: list, done) -> dict:
    from gearterm.backends.lossless_reply import cycle_figures

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
        # Positions the prompt and the reply filled, of the context the backend holds (None: not counted)
        "context_used": done.positions,
        "context": getattr(backend, "max_positions", None),
        # Decoder-layer projection weights held in gears (None: the backend cannot touch weights)
        "geared_share": getattr(backend, "geared_share", None),
        # Lossless mode: acceptance, tokens per verify pass, mean draft length (None in other modes)
        "lossless": cycle_figures(done.stats),
    }


def print_summary(s: dict) -> None:
    from gearterm.backends.lossless_reply import drafts_named

    speed = f"{s['tok_per_s']:.1f} tok/s decode" if s["tok_per_s"] else "tok/s n/a (one token)"
    ttft = f", first token {s['first_token_s'] * 1e3:.0f} ms" if s["first_token_s"] else ""
    mix = " ".join(f"{g} {s['gear_mix'][g]:.0%}" for g in GEARS)
    entropy = "n/a" if s["mean_entropy_bits"] is None else f"{s['mean_entropy_bits']:.2f} bits"
    lossless = ""
    if (c := s["lossless"]) is not None:
        kept = "n/a (nothing drafted)" if c["acceptance"] is None else f"{c['acceptance']:.0%}"
        lossless = f"; lossless: {kept} of {drafts_named(c)} kept, {c['tokens_per_verify_pass']:.2f} tokens per verify pass"
    print(
        f"\n-- {s['tokens']} tokens ({s['finish']}), {speed}{ttft}; gear mix {mix}; "
        f"{s['shifts']} shifts; mean entropy {entropy}{lossless} [{s['backend']} {s['model']}]",
        file=sys.stderr,
    )


async def _stream(backend, messages, params, on_event) -> None:
    async for event in backend.stream(messages, params):
        on_event(event)


def main(args: argparse.Namespace) -> int:
    import asyncio

    from gearterm.backends.base import Notice, PromptRead, ReplyDone, TokenEvent

    prompt = read_prompt(args)
    config, problems = settings.read_settings(args)
    for problem in problems:  # as in the app: said, and the default used
        print(f"gearterm: {problem}", file=sys.stderr)
    params = generation_params(config)
    try:
        backend = load_backend(config, terminal_progress)
    except KeyboardInterrupt:
        print("gearterm: interrupted while the model loaded: nothing was generated", file=sys.stderr)
        return 130

    tokens: list[TokenEvent] = []
    ended: list[ReplyDone] = []
    start = time.perf_counter()
    first_token_s = None  # for the summary of a reply cut short by Ctrl-C, which has no ReplyDone

    def on_event(event) -> None:
        nonlocal first_token_s
        if isinstance(event, TokenEvent):
            tokens.append(event)
            if first_token_s is None:
                first_token_s = time.perf_counter() - start
            if args.json:
                print(json.dumps(token_json(event)), flush=True)
            else:
                print(event.text, end="", flush=True)
        elif isinstance(event, Notice):
            print(f"gearterm: {event.level}: {event.text}", file=sys.stderr)
        elif isinstance(event, PromptRead):
            print(f"gearterm: reading the prompt: {event.done:,} of {event.total:,} tokens", file=sys.stderr, flush=True)
        elif isinstance(event, ReplyDone):
            ended.append(event)

    messages = [{"role": "user", "content": prompt}]
    try:
        asyncio.run(_stream(backend, messages, params, on_event))
    except KeyboardInterrupt:
        produced = sum(t.is_token for t in tokens)
        done = ReplyDone("cancelled", produced, time.perf_counter() - start, first_token_s)
        print_end(args, summarize(backend, tokens, done) | {"finish": "interrupted"})
        return 130
    # A backend is a plugin: one that ends its stream without a ReplyDone has still ended the reply.
    done = ended[-1] if ended else ReplyDone("error", len(tokens), 0.0, error="the backend stopped without ending the reply")
    print_end(args, summarize(backend, tokens, done))
    if done.reason == "error":
        print(f"gearterm: error: {one_line(done.error or 'the reply failed')}", file=sys.stderr)
        return 1
    return 0


def print_end(args: argparse.Namespace, summary: dict) -> None:
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print()
        print_summary(summary)
