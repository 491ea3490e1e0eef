"""`gearterm bench lossless`: how often the draft gear's tokens survive the high gear's check on
real text, and what that buys: acceptance, tokens kept per verify pass, the mean draft length
and decode tokens/s of lossless mode beside forced high, greedy, in one run.

Prompts are passages of real text from ../shared/data (or --text files), each the start of a
user message; every row decodes the same number of tokens (end of sequence ignored), rows
interleaved round by round so that a busy machine slows them alike; the table shows medians.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from gearterm.errors import UsageError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TEXTS = (
    "tinystories-valid-head/tinystories_val.txt",
    "nltk-gutenberg/austen-emma.txt",
    "tinyshakespeare/input.txt",
)
PASSAGE_CHARS = 400  # a passage: this many characters from a third of the way into the text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model directory or a .gguf file")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per row and round (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--max-draft", type=int, default=8, help="lossless mode's longest draft (default 8)")
    parser.add_argument("--draft-gear", default="low", choices=("low", "mid"), help="the gear that drafts (default low)")
    parser.add_argument("--text", type=Path, action="append", help=f"a text file to take a passage from (default: {', '.join(TEXTS)})")


def passage(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    start = len(text) // 3
    start = text.find("\n", start) + 1  # from the start of a line
    return text[start : start + PASSAGE_CHARS].strip()


def decode(backend, prompt: str, params) -> dict:
    """One reply: decode tokens/s (tokens after the first over the time after the first) and,
    in lossless mode, the cycles' counts."""
    from gearterm.backends.base import ReplyDone

    events = list(backend.generate([{"role": "user", "content": prompt}], params))
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.tokens == params.max_tokens, done
    return {"tok_per_s": (done.tokens - 1) / (done.seconds - done.first_token_s), **done.stats}


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.base import GenerationParams
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend
    from gearterm.kernels.gear import Gear

    if args.tokens < 2 or args.rounds < 1:
        raise UsageError("--tokens must be at least 2, --rounds at least 1")
    texts = args.text or [DATA / t for t in TEXTS]
    if missing := [str(t) for t in texts if not t.is_file()]:
        raise UsageError(f"no text at {', '.join(missing)}: pass --text FILE")
    backend = HFBackend(str(Path(args.model).expanduser()), device=args.device, gate=False)
    backend.load()
    backend.eos_ids = set()  # the same number of tokens in every row
    high = GenerationParams(max_tokens=args.tokens, gear_mode=GearMode.HIGH)
    lossless = replace(high, gear_mode=GearMode.LOSSLESS, lossless_draft=Gear.parse(args.draft_gear), lossless_max_draft=args.max_draft)
    rows = {"high": high, "lossless": lossless, "lossless, entropy stop": replace(lossless, draft_entropy_stop=True)}
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for path in texts:
            prompt = passage(path)
            for name, params in rows.items():
                results.setdefault((path.parent.name, name), []).append(decode(backend, prompt, params))

    print(f"model {Path(args.model).name} on {args.device}, greedy, {args.tokens} tokens a row, median of {args.rounds} "
          f"rounds; draft gear {args.draft_gear}, longest draft {args.max_draft}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'text':24} {'row':24} {'tok/s':>7} {'x high':>7} {'accepted':>9} {'per pass':>9} {'mean k':>7}")
    for (text, name), runs in results.items():
        rate = statistics.median(r["tok_per_s"] for r in runs)
        base = statistics.median(r["tok_per_s"] for r in results[text, "high"])
        line = f"{text:24} {name:24} {rate:7.1f} {rate / base:6.2f}x"
        if name != "high":
            drafted, accepted, passes = (sum(r[k] for r in runs) for k in ("drafted", "accepted", "verify_passes"))
            line += f" {100 * accepted / drafted:8.1f}% {(accepted + passes) / passes:9.2f} {drafted / passes:7.2f}"
        print(line)
    return 0
