"""`gearterm bench turns`: time to first token at each turn of a scripted conversation, with the
KV cache reused across turns (backends.kv_reuse) and, in the same run, with every turn's prompt
read afresh (the cache's record emptied before each turn): the baseline.

Each round runs the conversation once each way, starting from an empty cache; greedy replies
are the same both ways, so every turn's prompt is too. The table shows each turn's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from gearterm.errors import UsageError

SYSTEM = "You are a helpful assistant who answers in a few sentences."
QUESTIONS = (
    "What is a lighthouse for?",
    "Who kept lighthouses before they were automatic?",
    "What did a keeper do on a stormy night?",
    "How was the light made to turn?",
    "Why are lighthouses painted in stripes?",
    "Which is the oldest lighthouse still standing?",
    "How far out to sea can its light be seen?",
    "Write a short poem about a lighthouse keeper.",
)
WAYS = ("fresh", "reused")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model directory or a .gguf file (hf backend, CPU)")
    parser.add_argument("--tokens", type=int, default=64, help="longest reply of each turn (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--gear", default="auto", choices=("auto", "low", "mid", "high"), help="gear mode (default auto)")
    parser.add_argument("--json-out", type=Path, help="also write every turn of every round as JSON to this file")


def conversation(backend, params, reuse: bool) -> list[dict]:
    """One run of the scripted conversation from an empty cache: per turn, its prompt's length,
    the positions reused and the time to first token."""
    from gearterm.backends.base import ReplyDone, TokenEvent

    messages, turns = [{"role": "system", "content": SYSTEM}], []
    backend.cached.keep(0)
    for question in QUESTIONS:
        messages.append({"role": "user", "content": question})
        if not reuse:
            backend.cached.keep(0)
        events = list(backend.generate(messages, params))
        done = events[-1]
        assert isinstance(done, ReplyDone) and done.reason in ("stop", "length"), done
        turns.append({
            "prompt_tokens": done.stats["prompt_tokens"],
            "reused": done.stats["prompt_reused"],
            "first_token_s": done.first_token_s,
        })  # fmt: skip
        messages.append({"role": "assistant", "content": "".join(e.text for e in events if isinstance(e, TokenEvent))})
    return turns


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.base import GenerationParams
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend

    if args.tokens < 1 or args.rounds < 1 or args.threads < 1:
        raise UsageError("--tokens, --rounds and --threads must be at least 1")
    backend = HFBackend(str(Path(args.model).expanduser()), device="cpu", gate=False)
    backend.load()
    torch.set_num_threads(args.threads)  # after load(), which picks one thread for tiny models
    params = GenerationParams(max_tokens=args.tokens, gear_mode=GearMode(args.gear))
    list(backend.generate([{"role": "user", "content": QUESTIONS[0]}], params))  # warm-up, not timed
    runs = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:  # interleaved: a busy machine slows both alike
            runs[way].append(conversation(backend, params, reuse=way == "reused"))
    for fresh, reused in zip(runs["fresh"], runs["reused"]):  # the same replies, so the same prompts
        assert [t["prompt_tokens"] for t in fresh] == [t["prompt_tokens"] for t in reused], (fresh, reused)

    def median_ms(way: str, turn: int) -> float:
        return statistics.median(run[turn]["first_token_s"] for run in runs[way]) * 1e3

    print(f"model {Path(args.model).name}  gear {args.gear}, replies up to {args.tokens} tokens, greedy, "
          f"{args.threads} threads, median of {args.rounds} rounds")
    print(f"torch {torch.__version__}; {backend.max_positions:,}-position context")
    print(f"{'turn':>4} {'prompt':>7} {'reused':>7} {'first token, fresh':>19} {'reused':>8} {'speedup':>8}")
    for turn in range(len(QUESTIONS)):
        first = runs["reused"][0][turn]
        fresh, reused = median_ms("fresh", turn), median_ms("reused", turn)
        print(f"{turn + 1:4} {first['prompt_tokens']:7} {first['reused']:7} {fresh:16.0f} ms {reused:5.0f} ms "
              f"{fresh / reused:7.2f}x")
    if args.json_out:
        args.json_out.write_text(json.dumps(runs, indent=1))
    return 0
