"""`gearterm bench decode --context-sweep`: decode tokens/s in the high and the low gear with the
KV cache filled to each length, and the prefill's speed at each. The rule (issue 17): from the
shortest length to the longest, a step may slow down by no more than the extra keys and values
it reads take at the measured bandwidth."""

from __future__ import annotations

import torch

from gearterm.backends.decoder import HEAD_ROWS, PREFILL_CHUNK
from gearterm.bench.decode import decode
from gearterm.bench.step_bytes import BANDWIDTH_METHOD, kv_bytes_per_position, read_rates, weight_bytes
from gearterm.errors import UsageError
from gearterm.kernels.gear import Gear

SWEEP_MODES = ("high", "low")


def parse_lengths(text: str) -> list[int]:
    """'512,4096' -> [512, 4096]: positive, sorted, each once."""
    try:
        lengths = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise UsageError(f"--context-sweep takes filled lengths separated by commas, e.g. 512,4096: not {text!r}") from None
    if lengths[0] < 2:
        raise UsageError("--context-sweep lengths must be at least 2")
    return lengths


def sweep(backend, lengths: list[int], tokens: int, bandwidth_tbps: float) -> list[dict]:
    """Per filled length and mode: a fresh random prompt of that length through the backend's
    own reply (prefill, then `tokens` greedy decode steps), timed as bench decode times a mode.
    Rows carry the prediction from the shortest length's row of the same mode."""
    model = backend.model
    weights, per_position = weight_bytes(model), kv_bytes_per_position(model)
    generator = torch.Generator().manual_seed(2)
    prompts = {n: torch.randint(backend.vocab_size, (n,), generator=generator).tolist() for n in lengths}
    # One-time costs (kernels compiled on first use) land in a reply of a whole prompt chunk
    # and a partial one, not in the first row.
    warm_up = prompts[lengths[-1]][: PREFILL_CHUNK + HEAD_ROWS]
    for mode in SWEEP_MODES:
        decode(backend, warm_up, 2, mode)
    rows = []
    for filled in lengths:
        for mode in SWEEP_MODES:
            backend.cached.keep(0)  # a fresh prompt, so that the first token waits for its whole prefill
            run = decode(backend, prompts[filled], tokens, mode)
            # The steps attend over filled + 1 .. filled + tokens - 1 positions: on average this many.
            kv_bytes = per_position * (filled + tokens / 2)
            gear = Gear[mode.upper()]
            rows.append({
                "filled": filled,
                "mode": mode,
                "prefill_s": run["first_token_s"],
                "prefill_tok_per_s": filled / run["first_token_s"],
                "tok_per_s": run["tok_per_s"],
                "ms_per_token": 1e3 / run["tok_per_s"],
                "kv_bytes_per_step": kv_bytes,
                "gear_mix": run["gear_mix"],
                "bandwidth_tbps": bandwidth_tbps,
                **read_rates(weights[gear] + kv_bytes, run["tok_per_s"], bandwidth_tbps),
            })  # fmt: skip
    for row in rows:
        base = next(r for r in rows if r["mode"] == row["mode"])  # the shortest length's
        extra_ms = (row["kv_bytes_per_step"] - base["kv_bytes_per_step"]) / (bandwidth_tbps * 1e12) * 1e3
        row["predicted_ms_per_token"] = base["ms_per_token"] + extra_ms
        row["excess_ms"] = max(0.0, row["ms_per_token"] - row["predicted_ms_per_token"])
    return rows


def verdict(row: dict) -> str:
    if not row["excess_ms"]:
        return "within prediction"
    return f"{row['excess_ms']:.3f} ms over ({row['excess_ms'] / row['predicted_ms_per_token']:+.1%})"


def print_sweep(rows: list[dict], tokens: int, context: int) -> None:
    first = rows[0]
    print(f"context sweep: KV cache {context:,} positions; per row a fresh random prompt of the filled length, "
          f"then {tokens} tokens decoded, greedy, batch 1")
    print(f"bandwidth {first['bandwidth_tbps']:.2f} TB/s: {BANDWIDTH_METHOD}")
    print(f"predicted: ms/token at {first['filled']:,} filled + the extra KV bytes a step reads, at that bandwidth")
    print("prefill tok/s: prompt tokens / time to the first token (the prefill, its readings and one sampling)")
    print(f"{'filled':>7} {'mode':<5} {'prefill tok/s':>13} {'tok/s':>7} {'ms/token':>9} {'KV MB/step':>10} "
          f"{'TB/s':>5} {'predicted ms':>12}  verdict")
    for r in rows:
        print(f"{r['filled']:>7} {r['mode']:<5} {r['prefill_tok_per_s']:>13.0f} {r['tok_per_s']:>7.1f} "
              f"{r['ms_per_token']:>9.3f} {r['kv_bytes_per_step'] / 1e6:>10.1f} {r['tbps']:>5.2f} "
              f"{r['predicted_ms_per_token']:>12.3f}  {verdict(r)}")
    for r in rows:
        if r["gear_mix"][r["mode"]] < 1:
            mix = "/".join(f"{r['gear_mix'][g]:.0%}" for g in ("low", "mid", "high"))
            print(f"note: the {r['mode']} row at {r['filled']} ran gears low/mid/high {mix} (the anomaly guard)")
