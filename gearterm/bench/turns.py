"""`gearterm bench turns`: time to first token at each turn of a scripted conversation, with the
KV cache reused across turns (backends.kv_reuse) and, in the same run, with every turn's prompt
read afresh (the cache's record emptied before each turn): the baseline.

Each round runs the conversation once each way, starting from an empty cache; greedy replies
are the same both ways, so every turn's prompt is too. The table shows each turn's median.

`--model` runs a real model's chat on the CPU. `--shape` builds a Llama of that shape with random
weights (as bench decode does) on `--device`, with no tokenizer: its conversation is random ids
of the lengths the scripted one has through a chat template, and replies of exactly `--tokens`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from functools import partial
from pathlib import Path

from gearterm.bench.decode import SHAPES, IdsTokenizer, random_llama
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


# Ids a Llama 3 chat template adds around a turn's text (headers, end of turn), and the tokens a
# word of English takes: what the scripted turns come to as random ids.
TEMPLATE_IDS = {"system": 30, "user": 9}
TOKENS_PER_WORD = 1.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model directory or a .gguf file (hf backend, CPU)")
    source.add_argument("--shape", choices=sorted(SHAPES), help="random weights of a named shape, on --device")
    parser.add_argument("--device", default="cpu", help="with --shape: cpu (default) or cuda")
    parser.add_argument("--tokens", type=int, default=64, help="longest reply of each turn (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--gear", default="auto", choices=("auto", "low", "mid", "high"), help="gear mode (default auto)")
    parser.add_argument(
        "--document-tokens", type=int, default=0,
        help="with --shape: a pasted document of this many ids before the first question, so every turn runs deep in a long conversation",
    )  # fmt: skip
    parser.add_argument("--json-out", type=Path, help="also write every turn of every round as JSON to this file")


class ChatScript:
    """The conversation in words, through the model's chat template (backend.generate)."""

    def __init__(self, backend):
        self.backend, self.messages = backend, [{"role": "system", "content": SYSTEM}]

    def turn(self, question: int, params) -> list:
        from gearterm.backends.base import TokenEvent

        self.messages.append({"role": "user", "content": QUESTIONS[question]})
        events = list(self.backend.generate(self.messages, params))
        self.messages.append({"role": "assistant", "content": "".join(e.text for e in events if isinstance(e, TokenEvent))})
        return events


class IdsScript:
    """The conversation as random ids for a model with no tokenizer: each turn as many ids as
    its words take with the template's, the same ids every run; the replies' own ids kept."""

    def __init__(self, backend, document_tokens: int = 0):
        import torch

        self.backend, self.generator = backend, torch.Generator().manual_seed(3)
        self.ids = self._random(TEMPLATE_IDS["system"], SYSTEM)
        self.ids += torch.randint(backend.vocab_size, (document_tokens,), generator=self.generator).tolist()

    def _random(self, template: int, text: str) -> list[int]:
        import torch

        n = template + round(TOKENS_PER_WORD * len(text.split()))
        return torch.randint(self.backend.vocab_size, (n,), generator=self.generator).tolist()

    def turn(self, question: int, params) -> list:
        from gearterm.backends.base import TokenEvent

        self.ids += self._random(TEMPLATE_IDS["user"], QUESTIONS[question])
        events = list(self.backend._generate(list(self.ids), params))
        self.ids += [e.token_id for e in events if isinstance(e, TokenEvent) and e.is_token]
        return events


def conversation(backend, params, reuse: bool, script) -> list[dict]:
    """One run of the scripted conversation from an empty cache: per turn, its prompt's length,
    the positions reused and the time to first token."""
    from gearterm.backends.base import ReplyDone

    talk, turns = script(backend), []
    backend.cached.keep(0)
    for question in range(len(QUESTIONS)):
        if not reuse:
            backend.cached.keep(0)
        done = talk.turn(question, params)[-1]
        assert isinstance(done, ReplyDone) and done.reason in ("stop", "length"), done
        turns.append({
            "prompt_tokens": done.stats["prompt_tokens"],
            "reused": done.stats["prompt_reused"],
            "first_token_s": done.first_token_s,
        })  # fmt: skip
    return turns


def random_backend(shape: str, device: str, tokens: int, document_tokens: int = 0):
    """HFBackend over a random Llama of `shape` on `device` (as bench decode builds it), its
    context the whole conversation's, every reply exactly `tokens` long (no end of sequence)."""
    import torch

    from gearterm.backends.hf import HFBackend, pick_device

    device = pick_device(device)
    model = random_llama(shape, torch.float16 if device.type == "cuda" else torch.float32, device)
    words = len(SYSTEM.split()) + sum(len(q.split()) for q in QUESTIONS)
    ids = TEMPLATE_IDS["system"] + TEMPLATE_IDS["user"] * len(QUESTIONS) + TOKENS_PER_WORD * words + document_tokens
    model.config.max_position_embeddings = -(-int(ids + len(QUESTIONS) * tokens + 1) // 256) * 256
    backend = HFBackend(f"random {shape}", device=str(device), gate=False)
    backend.attach(model, IdsTokenizer())
    backend.eos_ids = set()
    return backend


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.base import GenerationParams
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend

    if args.tokens < 1 or args.rounds < 1 or args.threads < 1:
        raise UsageError("--tokens, --rounds and --threads must be at least 1")
    if args.document_tokens < 0 or (args.document_tokens and args.model):
        raise UsageError("--document-tokens takes a count of 0 or more, with --shape")
    if args.model:
        name, script = Path(args.model).name, ChatScript
        backend = HFBackend(str(Path(args.model).expanduser()), device="cpu", gate=False)
        backend.load()
    else:
        name, script = f"random {args.shape} weights", partial(IdsScript, document_tokens=args.document_tokens)
        backend = random_backend(args.shape, args.device, args.tokens, args.document_tokens)
    torch.set_num_threads(args.threads)  # after load(), which picks one thread for tiny models
    params = GenerationParams(max_tokens=args.tokens, gear_mode=GearMode(args.gear))
    # Warm-up, not timed: the whole conversation once, for each prompt length's first use (a
    # GPU's libraries pick and load kernels per new shape: 0.7 s a length on an H200).
    conversation(backend, params, False, script)
    runs = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:  # interleaved: a busy machine slows both alike
            runs[way].append(conversation(backend, params, way == "reused", script))
    for fresh, reused in zip(runs["fresh"], runs["reused"]):  # the same replies, so the same prompts
        assert [t["prompt_tokens"] for t in fresh] == [t["prompt_tokens"] for t in reused], (fresh, reused)

    def median_ms(way: str, turn: int) -> float:
        return statistics.median(run[turn]["first_token_s"] for run in runs[way]) * 1e3

    device = torch.cuda.get_device_name() if backend.device.type == "cuda" else f"cpu, {args.threads} threads"
    print(f"model {name}  gear {args.gear}, replies up to {args.tokens} tokens, greedy, "
          f"{device}, median of {args.rounds} rounds")
    document = f"; a {args.document_tokens:,}-id document before the first question" if args.document_tokens else ""
    print(f"torch {torch.__version__}; {backend.max_positions:,}-position context{document}")
    print(f"{'turn':>4} {'prompt':>7} {'reused':>7} {'first token, fresh':>19} {'reused':>8} {'speedup':>8}")
    for turn in range(len(QUESTIONS)):
        first = runs["reused"][0][turn]
        fresh, reused = median_ms("fresh", turn), median_ms("reused", turn)
        print(f"{turn + 1:4} {first['prompt_tokens']:7} {first['reused']:7} {fresh:16.0f} ms {reused:5.0f} ms "
              f"{fresh / reused:7.2f}x")
    if args.json_out:
        args.json_out.write_text(json.dumps(runs, indent=1))
    return 0
