"""The line under each reply, in the chat and in the export: its size and time, its decode rate,
the gear mode it ran in, the share of its tokens each gear produced, and how it ended."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from gearterm.history import StoredMessage, TokenRow

GEARS = ("low", "mid", "high")
CUT_OFF = "incomplete: the app stopped mid-reply"  # a reply with no end reason in the store


@dataclass(frozen=True)
class ReplyFacts:
    tokens: int
    seconds: float | None  # wall time, submit to end; None where not stored (replies kept before it was)
    first_token_s: float | None  # submit to first token (a continued reply: each part's, added up)
    gear_mode: str | None  # auto, low, mid or high; None where not stored
    gears: Counter[str]  # gear name -> tokens it produced
    end_reason: str | None  # None: a crash cut the reply off
    error: str | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate: tokens after the first over the time after the first (prefill left out)."""
        if self.tokens < 2 or self.seconds is None or self.first_token_s is None or self.seconds <= self.first_token_s:
            return None
        return (self.tokens - 1) / (self.seconds - self.first_token_s)

    def line(self) -> str:
        parts = [f"{self.tokens} tokens"]
        parts.append("time n/a (not stored)" if self.seconds is None else f"{self.seconds:.2f} s")
        if (rate := self.tokens_per_s) is not None:
            parts.append(f"{rate:.1f} tok/s")
        elif self.tokens < 2:  # a reply that failed before its first token has no first-token time either
            parts.append("tok/s n/a (under 2 tokens)")
        elif self.seconds is None or self.first_token_s is None:
            parts.append("tok/s n/a (not stored)")
        else:
            parts.append("tok/s n/a (no time after the first token)")
        parts.append(f"{self.gear_mode} mode" if self.gear_mode else "mode n/a (not stored)")
        total = sum(self.gears.values())
        if total:
            parts.append(" ".join(f"{gear} {100 * self.gears[gear] / total:.0f}%" for gear in GEARS))
        ending = self.end_reason or CUT_OFF
        parts.append(f"{ending} — {self.error}" if self.error else ending)
        return " · ".join(parts)

    def continued_by(self, more: ReplyFacts) -> ReplyFacts:
        """The whole reply once a continuation, `more`, has added to it: its end is the
        continuation's; tokens, gear mix and times add up, and so do the waits for each part's
        first token, so that the decode rate leaves out both prompts (it counts one token more
        than were decoded: 0.4% of a 256-token reply)."""
        seconds = first_token_s = None
        if self.seconds is not None and more.seconds is not None:
            seconds = self.seconds + more.seconds
            wait = more.first_token_s if more.first_token_s is not None else more.seconds  # no token: all of it
            first_token_s = None if self.first_token_s is None else self.first_token_s + wait
        return ReplyFacts(
            self.tokens + more.tokens,
            seconds,
            first_token_s,
            gear_modes(self.gear_mode, more.gear_mode),
            self.gears + more.gears,
            more.end_reason,
            more.error,
        )


def gear_modes(first: str | None, then: str | None) -> str | None:
    """The gear mode of a reply continued in `then` after `first`, e.g. "auto, then high"."""
    return first if first == then else f"{first or 'n/a'}, then {then}"


def stored_facts(message: StoredMessage, tokens: Sequence[TokenRow]) -> ReplyFacts:
    """A reply as the history keeps it: its token rows and what was stored with it."""
    return ReplyFacts(
        len(tokens),
        message.seconds,
        message.first_token_s,
        message.gear_mode,
        Counter(token.gear for token in tokens),
        message.end_reason,
        message.error,
    )
