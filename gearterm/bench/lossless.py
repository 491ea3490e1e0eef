"""`gearterm bench lossless`: how often the draft gear's tokens survive the high gear's check on
real text, and what that buys: acceptance, tokens kept per verify pass, the mean draft length
and decode tokens/s of lossless mode beside forced high, greedy, in one run.

Prompts are passages of real text from ../shared/data (or --text files), each the start of a
user message; every row decodes the same number of tokens (end of sequence ignored), rows
interleaved round by round so that a busy machine slows them alike; the table shows medians.

Beside the measured tokens/s, a modelled figure from the same run's counts and the time of
each kind of forward pass, timed alone on the same model (high-gear step, draft step, verify
pass of T positions): (tokens - 1) high steps against drafted draft steps plus one verify pass
of mean k + 1 positions per cycle (a high step for a cycle that drafted nothing). It leaves out
the loop's own work (sampling, the host's reads) and a busy machine's noise. "low/mid": the
drafted tokens each gear drafted; "alone": the cycles that drafted nothing (--draft-gear auto
chose the high gear alone). --project-onto SHAPE times those passes on a random model
of that shape instead (bench decode's shapes, e.g. llama3-8b on a GPU) and models its tokens/s
at the acceptances measured here: random weights give no acceptance worth reporting, real
text does.
"""

from __future__ import annotations

import argparse
import statistics
import time
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
TIMED_AT = 128  # cache position the forward passes are timed at
REPEATS = 7  # timings of each pass; the median counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model directory or a .gguf file")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per row and round (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--max-draft", type=int, default=8, help="lossless mode's longest draft (default 8)")
    parser.add_argument("--draft-gear", default="low", choices=("low", "mid", "auto"),
                        help="the gear that drafts (default low; auto: the one that costs less per kept token, measured)")
    parser.add_argument("--text", type=Path, action="append", help=f"a text file to take a passage from (default: {', '.join(TEXTS)})")
    parser.add_argument("--project-onto", metavar="SHAPE", help="model tokens/s on a random model of this shape (bench decode's shapes)")


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


def pass_costs(backend, longest: int) -> dict:
    """Milliseconds of each forward pass lossless mode runs, alone, at cache position TIMED_AT:
    "high" (a forced-high step), "low" and "mid" (a draft step), and T (a verify pass of T positions)."""
    from gearterm.kernels.gear import Gear

    def ms(gear, positions: int) -> float:
        backend.selector.gear = gear
        times = []
        for _ in range(REPEATS + 1):  # the first warms up (and captures a GPU's verify graph)
            start = time.perf_counter()
            float(backend._run([0] * positions, TIMED_AT)[-1, 0])  # reading a logit waits for the pass
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times[1:])

    costs = {gear.label: ms(gear, 1) for gear in (Gear.HIGH, Gear.LOW, Gear.MID)}
    costs |= {t: ms(Gear.HIGH, t) for t in range(2, longest + 2)}
    backend.cached.keep(0)  # the timed passes wrote over the cache
    return costs


def modelled_ratio(costs: dict, drafted_by_gear: dict, passes: int, tokens: int, high_alone: int = 0) -> float:
    """Lossless tokens/s over forced high's, from the passes' costs and the replies' counts
    (`high_alone` of the passes drafted nothing: each a high step)."""
    import numpy as np

    lengths = [t for t in costs if isinstance(t, int)]
    verifying = passes - high_alone
    # A verify pass of mean k + 1 positions, between the whole lengths timed.
    verify = np.interp(sum(drafted_by_gear.values()) / max(verifying, 1) + 1, lengths, [costs[t] for t in lengths])
    drafting = sum(n * costs[gear] for gear, n in drafted_by_gear.items())
    return tokens * costs["high"] / (drafting + verifying * verify + high_alone * costs["high"])


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.base import GenerationParams
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend
    from gearterm.backends.draft_choice import parse_draft_gear

    if args.tokens < 2 or args.rounds < 1:
        raise UsageError("--tokens must be at least 2, --rounds at least 1")
    texts = args.text or [DATA / t for t in TEXTS]
    if missing := [str(t) for t in texts if not t.is_file()]:
        raise UsageError(f"no text at {', '.join(missing)}: pass --text FILE")
    draft_gear = parse_draft_gear(args.draft_gear)
    backend = HFBackend(str(Path(args.model).expanduser()), device=args.device, gate=False)
    backend.load()
    backend.eos_ids = set()  # the same number of tokens in every row
    high = GenerationParams(max_tokens=args.tokens, gear_mode=GearMode.HIGH)
    lossless = replace(high, gear_mode=GearMode.LOSSLESS, lossless_draft=draft_gear, lossless_max_draft=args.max_draft)
    rows = {"high": high, "lossless": lossless, "lossless, no entropy stop": replace(lossless, draft_entropy_stop=False)}
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for path in texts:
            prompt = passage(path)
            for name, params in rows.items():
                results.setdefault((path.parent.name, name), []).append(decode(backend, prompt, params))
    costs = pass_costs(backend, args.max_draft)
    where = f"{Path(args.model).name} on {args.device}"
    if args.project_onto:
        from gearterm.bench.decode import IdsTokenizer, random_llama

        del backend
        dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
        backend = HFBackend(f"random {args.project_onto}", device=args.device, gate=False)
        backend.attach(random_llama(args.project_onto, dtype, torch.device(args.device)), IdsTokenizer())
        costs, where = pass_costs(backend, args.max_draft), f"random {args.project_onto} on {args.device}"

    print(f"model {Path(args.model).name} on {args.device}, greedy, {args.tokens} tokens a row, median of {args.rounds} "
          f"rounds; draft gear {args.draft_gear}, longest draft {args.max_draft}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"passes timed alone ({where}, cache position {TIMED_AT}): high step {costs['high']:.2f} ms, "
          f"draft step low {costs['low']:.2f}, mid {costs['mid']:.2f} ms, verify pass " + ", ".join(f"{t}: {costs[t]:.2f}" for t in costs if isinstance(t, int)) + " ms")
    print(f"{'text':24} {'row':24} {'tok/s':>7} {'x high':>7} {'modelled':>9} {'accepted':>9} {'per pass':>9} {'mean k':>7} {'low/mid':>8} {'alone':>6}")
    for (text, name), runs in results.items():
        rate = statistics.median(r["tok_per_s"] for r in runs)
        base = statistics.median(r["tok_per_s"] for r in results[text, "high"])
        line = f"{text:24} {name:24} {rate:7.1f} {rate / base:6.2f}x"
        if name != "high":
            drafted, accepted, passes = (sum(r[k] for r in runs) for k in ("drafted", "accepted", "verify_passes"))
            by_gear = {g: sum(r["drafted_by_gear"].get(g, 0) for r in runs) for g in ("low", "mid")}
            alone = sum(r["high_alone"] for r in runs)
            modelled = modelled_ratio(costs, by_gear, passes, len(runs) * (args.tokens - 1), alone)
            shares = "/".join(f"{100 * by_gear[g] / drafted:.0f}" for g in ("low", "mid")) if drafted else "n/a"
            kept = f"{100 * accepted / drafted:8.1f}%" if drafted else f"{'n/a':>9}"
            line += (f" {modelled:8.2f}x {kept} {(accepted + passes) / passes:9.2f} {drafted / passes:7.2f} {shares:>8}"
                     f" {100 * alone / passes:5.0f}%")
        print(line)
    return 0
