"""A reply in lossless mode: the prompt at the high gear, then draft-and-verify cycles
(backends.lossless), each kept token streamed as a TokenEvent that says where it came from."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gearterm.backends.base import Event, GenerationParams, ReplyDone, TokenEvent
from gearterm.backends.detokenize import IncrementalDetokenizer
from gearterm.backends.draft_choice import DraftChoice
from gearterm.backends.gearbox import Gearbox
from gearterm.backends.lossless import KeptToken, LosslessDecoding
from gearterm.kernels.gear import Gear

if TYPE_CHECKING:
    from gearterm.backends.geared_generation import GearedGeneration


def cycle_figures(stats: dict) -> dict | None:
    """A lossless reply's acceptance (drafted tokens the high gear kept), tokens kept per verify
    pass and mean draft length, from its ReplyDone stats; None for a reply in another mode, or
    one that ended before its first verify pass."""
    passes, drafted, accepted = stats.get("verify_passes"), stats.get("drafted"), stats.get("accepted")
    if not passes:
        return None
    return {
        "draft_gear": stats["draft_gear"],
        "drafted_by_gear": stats["drafted_by_gear"],
        "high_alone": stats["high_alone"],
        "verify_passes": passes,
        "acceptance": accepted / drafted if drafted else None,
        "accepted_per_verify_pass": accepted / passes,
        "tokens_per_verify_pass": (accepted + passes) / passes,
        "mean_draft": drafted / passes,
    }


def drafts_named(figures: dict) -> str:
    """What drafted, in words: "low-gear drafts", or where gearterm chose, the tokens each gear drafted."""
    if figures["draft_gear"] != "auto":
        return f"{figures['draft_gear']}-gear drafts"
    by_gear = ", ".join(f"{g} {n}" for g, n in figures["drafted_by_gear"].items()) or "none"
    alone = f"; {figures['high_alone']} passes of the high gear alone" if figures["high_alone"] else ""
    return f"drafts ({by_gear} tokens{alone}; chosen by measured cost)"


def draft_choice(backend: GearedGeneration, params: GenerationParams) -> DraftChoice:
    """The reply's draft gear: the one asked for, or where none is (None), low, mid or no drafts
    by what their cycles cost, measured across this backend's replies with the same draft settings."""
    if params.lossless_draft is not None:
        return DraftChoice([params.lossless_draft])
    key = params.draft_entropy_stop, params.lossless_max_draft
    return backend.draft_choices.setdefault(key, DraftChoice([Gear.LOW, Gear.MID, Gear.HIGH]))


def lossless_reply(backend: GearedGeneration, ids: list[int], params: GenerationParams) -> Iterator[Event]:
    # The gearbox holds the high gear (lossless forces it); it runs for its anomaly guard.
    gearbox = Gearbox(backend.vocab_size, params.gear_mode, backend.policy)
    detok = IncrementalDetokenizer(backend.tokenizer)
    start = time.perf_counter()
    reused = yield from backend._read_prompt(ids, params, gearbox)
    # The prompt's pass was the high gear's: its token is drawn as forced high draws it.
    first = backend._sample(params)
    batch = [KeptToken(first.token_id, False, first.entropy_bits, first.varentropy_bits2, first.logprob)]
    first_token_s = time.perf_counter() - start
    step_ms = first_token_s * 1e3
    stop = gearbox.high if params.draft_entropy_stop else None
    decoding = LosslessDecoding(backend._run, backend.selector, params, draft_choice(backend, params), params.lossless_max_draft, stop)
    cycles = drafted_total = accepted_total = 0
    drafted_by_gear, high_alone = {}, 0  # tokens each draft gear drafted; cycles that drafted nothing by choice
    drafted: int | None = None
    draft_gear = None  # the last cycle's
    pos, produced, reason = len(ids), 0, "length"
    while True:
        for token in batch:
            produced += 1
            if token.token_id in backend.eos_ids:
                reason = "stop"
            elif produced < params.max_tokens and backend._cancel.is_set():
                reason = "cancelled"
            decision = gearbox.step(token.entropy_bits)
            yield TokenEvent(
                text=detok.push(token.token_id),
                token_id=token.token_id,
                gear=draft_gear if token.from_draft else Gear.HIGH,
                next_gear=Gear.HIGH,
                entropy_bits=token.entropy_bits,
                varentropy_bits2=token.varentropy_bits2,
                logprob=token.logprob,
                step_ms=step_ms,
                anomaly=decision.anomaly,
                thresholds_bits=(gearbox.low, gearbox.high),
                kept_from="draft" if token.from_draft else "high",
                drafted=None if token.from_draft else drafted,
            )
            if reason != "length" or produced >= params.max_tokens:
                break
        if reason != "length" or produced >= params.max_tokens:
            break
        if backend._cancel.is_set():  # set while the caller had the tokens
            reason = "cancelled"
            break
        cycle_start = time.perf_counter()
        last = batch[-1].token_id
        cycle = decoding.cycle(last, pos, params.max_tokens - produced)
        batch = cycle.kept
        accepted = len(batch) - 1
        # The cache now holds `last` and the accepted drafts, at the high gear.
        backend.cached.add([last, *(t.token_id for t in batch[:accepted])], Gear.HIGH, [t.entropy_bits for t in batch])
        pos += len(batch)
        drafted, draft_gear = cycle.drafted, cycle.draft_gear
        if draft_gear is Gear.HIGH:
            high_alone += 1
        else:
            drafted_by_gear[draft_gear.label] = drafted_by_gear.get(draft_gear.label, 0) + drafted
        cycles, drafted_total, accepted_total = cycles + 1, drafted_total + drafted, accepted_total + accepted
        step_ms = (time.perf_counter() - cycle_start) * 1e3 / len(batch)  # the cycle's time, shared by its tokens
    if tail := detok.flush():
        yield TokenEvent(tail, None, Gear.HIGH, Gear.HIGH, None, 0.0, entropy_source=None, flags=("text-only",))
    yield ReplyDone(
        reason=reason,
        tokens=produced,
        seconds=time.perf_counter() - start,
        first_token_s=first_token_s,
        stats={
            "shifts": 0,
            "prompt_tokens": len(ids),
            "prompt_reused": reused,
            "draft_gear": "auto" if params.lossless_draft is None else params.lossless_draft.label,
            "drafted_by_gear": drafted_by_gear,
            "high_alone": high_alone,
            "verify_passes": cycles,
            "drafted": drafted_total,
            "accepted": accepted_total,
            **backend._reply_stats(),
        },
    )
