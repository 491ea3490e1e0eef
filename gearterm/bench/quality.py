"""`gearterm bench quality`: what each gear mode costs in quality, teacher-forced on real text.

For high, mid, low and auto: perplexity, its change against the high gear, and how often the
most likely next token agrees with the high gear's, over the same paragraphs (each scored
from BOS, as the model would see a new story).

Lossless mode is not teacher-forced: scoring given text would only run the high gear, which
shows nothing about the drafts. It generates instead: greedy from the start of each paragraph,
in forced high and in lossless mode, and the table says how many tokens are the same and the
high gear's perplexity of each mode's own continuations (equal where the tokens are).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gearterm.commands.run import load_backend
from gearterm.commands.settings import MODEL_FLAGS, add_model_arguments, flag_settings
from gearterm.errors import UsageError

MODES = ("high", "mid", "low", "auto")
PROMPT_TOKENS = 16  # lossless check: each paragraph's first tokens prompt the continuation
LOSSLESS_PARAGRAPHS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--text", required=True, type=Path, help="a UTF-8 text file; paragraphs split on blank lines")
    parser.add_argument("--tokens", type=int, default=4000, help="predicted tokens to score (default 4000)")
    parser.add_argument(
        "--generate-tokens", type=int, default=64,
        help=f"lossless check: tokens generated after each of the first {LOSSLESS_PARAGRAPHS} paragraphs' starts (default 64; 0 skips it)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def paragraphs_for(backend, text: str, tokens: int) -> list[list[int]]:
    """Paragraphs, in order, until `tokens` next-token predictions are covered."""
    limit = getattr(backend, "max_positions", None) or 2048
    chunks, predicted = [], 0
    for paragraph in text.split("\n\n"):
        if not paragraph.strip():
            continue
        ids = backend.encode_text(paragraph.strip())[:limit]
        if len(ids) < 2:
            continue
        chunks.append(ids)
        predicted += len(ids) - 1
        if predicted >= tokens:
            break
    return chunks


def score(backend, chunks: list[list[int]]) -> dict:
    import math

    from gearterm.backends.gearbox import GearMode

    runs = {}
    for mode in MODES:
        logprobs, top1, gears, shifts = [], [], [], 0
        for ids in chunks:
            scored = backend.teacher_force(ids, GearMode(mode))
            logprobs += scored.logprobs
            top1 += scored.top1
            gears += scored.gears
            shifts += scored.shifts
        runs[mode] = (logprobs, top1, gears, shifts)

    high_ppl = math.exp(-sum(runs["high"][0]) / len(runs["high"][0]))
    high_top1 = runs["high"][1]
    modes = {}
    for mode, (logprobs, top1, gears, shifts) in runs.items():
        n = len(logprobs)
        ppl = math.exp(-sum(logprobs) / n)
        modes[mode] = {
            "ppl": ppl,
            "ppl_delta_pct": 100 * (ppl / high_ppl - 1),
            "top1_agreement": sum(a == b for a, b in zip(top1, high_top1)) / n,
            "gear_mix": {g: sum(x.label == g for x in gears) / n for g in ("low", "mid", "high")},
            "shifts": shifts,
        }
    return modes


def lossless_check(backend, chunks: list[list[int]], tokens: int) -> dict:
    """Greedy continuations of each paragraph's first PROMPT_TOKENS tokens in forced high and in
    lossless mode (end of sequence ignored): the share of tokens that are the same, and the high
    gear's perplexity, teacher-forced, of each mode's own continuations."""
    import math

    from gearterm.backends.base import GenerationParams, TokenEvent
    from gearterm.backends.gearbox import GearMode

    eos, backend.eos_ids = backend.eos_ids, set()
    same = total = 0
    logprobs: dict[str, list[float]] = {"high": [], "lossless": []}
    try:
        for ids in [c for c in chunks if len(c) > PROMPT_TOKENS][:LOSSLESS_PARAGRAPHS]:
            prompt, replies = ids[:PROMPT_TOKENS], {}
            for mode in logprobs:
                params = GenerationParams(max_tokens=tokens, gear_mode=GearMode(mode))
                events = backend._generate(prompt, params)
                replies[mode] = [e.token_id for e in events if isinstance(e, TokenEvent) and e.token_id is not None]
                scored = backend.teacher_force(prompt + replies[mode], GearMode.HIGH)
                logprobs[mode] += scored.logprobs[len(prompt) - 1 :]
            same += sum(a == b for a, b in zip(replies["high"], replies["lossless"]))
            total += len(replies["high"])
    finally:
        backend.eos_ids = eos
    return {
        "tokens": total,
        "same_as_high": same / total if total else None,
        **{f"{mode}_ppl": math.exp(-sum(lp) / len(lp)) if lp else None for mode, lp in logprobs.items()},
    }


def print_table(result: dict, text: Path, paragraphs: int) -> None:
    print(f"model {result['model']}  text {text}  {paragraphs} paragraphs, {result['tokens']} predicted tokens")
    print(f"{'mode':<6} {'ppl':>8} {'vs high':>9} {'top-1 = high':>13} {'gear mix low/mid/high':>23} {'shifts':>7}")
    for mode, m in result["modes"].items():
        mix = "/".join(f"{m['gear_mix'][g]:.0%}" for g in ("low", "mid", "high"))
        print(
            f"{mode:<6} {m['ppl']:>8.4f} {m['ppl_delta_pct']:>+8.2f}% {m['top1_agreement']:>12.1%} {mix:>23} {m['shifts']:>7}"
        )
    if (c := result.get("lossless")) and c["tokens"]:
        print(
            f"lossless, generated (not teacher-forced): {c['tokens']} greedy tokens after the first {PROMPT_TOKENS} "
            f"of {min(paragraphs, LOSSLESS_PARAGRAPHS)} paragraphs; {c['same_as_high']:.1%} the same as forced high's; "
            f"the high gear's perplexity of each mode's continuations: high {c['high_ppl']:.4f}, lossless {c['lossless_ppl']:.4f}"
        )


def main(args: argparse.Namespace) -> int:
    if args.tokens <= 0:
        raise UsageError(f"--tokens must be at least 1, got {args.tokens}")
    try:
        text = args.text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read --text {args.text}: {e}") from None
    from gearterm.config import Config, apply_flags

    # A benchmark measures what its flags name, not the user's config file.
    backend = load_backend(apply_flags(Config(), **flag_settings(args, MODEL_FLAGS)))
    if not hasattr(backend, "teacher_force"):
        raise UsageError(f"the {backend.name} backend cannot score text: use a local backend (hf or mlx)")
    chunks = paragraphs_for(backend, text, args.tokens)
    if not chunks:
        raise UsageError(f"{args.text} has no paragraph of two or more tokens")
    result = {"model": backend.model_name, "tokens": sum(len(c) - 1 for c in chunks), "modes": score(backend, chunks)}
    if args.generate_tokens > 0:
        result["lossless"] = lossless_check(backend, chunks, args.generate_tokens)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result, args.text, len(chunks))
    return 0
