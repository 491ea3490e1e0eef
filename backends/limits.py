"""The range every numeric setting takes, in one place: GenerationParams, the command-line flags
and config.toml all check their numbers here, so a value one accepts the others accept too."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """Finite numbers from `low` to `high`; `zero` names what 0 means where 0 is allowed below `low`."""

    low: float
    high: float = math.inf
    whole: bool = False  # an integer
    above_low: bool = False  # `low` itself is out (top-p, timeouts)
    zero: str = ""

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low, high = _plain(self.low), _plain(self.high)
        if self.high == math.inf:
            span = f"{kind} {'above' if self.above_low else 'of at least'} {low}"
        elif self.above_low:
            span = f"{kind} above {low} and at most {high}"
        else:
            span = f"{kind} from {low} to {high}"
        return f"0 ({self.zero}) or {span}" if self.zero else span

    def allows(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.zero and value == 0:
            return True
        if self.whole and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (value > self.low if self.above_low else value >= self.low) and value <= self.high


LIMITS = {
    # llama.cpp's server reads it as a 32-bit integer.
    "max_tokens": Limit(1, 2**31 - 1, whole=True),
    # Below 0.01 sampling is greedy in all but name, and far below it logits / t overflows
    # float32 (inf, then NaN probabilities); past 100 every distribution is already flat.
    "temperature": Limit(0.01, 100, zero="greedy"),
    "top_p": Limit(0, 1, above_low=True),
    # The narrowest generator among the backends: llama.cpp's server takes a 32-bit unsigned seed.
    "seed": Limit(0, 2**32 - 1, whole=True),
    # A timer set further out overflows the event loop's clock; a week is wait enough.
    "timeout_s": Limit(0, 7 * 24 * 3600, above_low=True),
    "top_logprobs": Limit(1, whole=True),
    "vocab_size": Limit(1, whole=True, zero="the server's figure"),
    "entropy_ceiling_bits": Limit(0, above_low=True, zero="log2 of the vocabulary"),
    # A prompt needs a few tokens of its own beside the reply's.
    "context": Limit(16, 2**31 - 1, whole=True, zero="the model's own, or what fits in free memory"),
    # At a 32k vocabulary (log2 V = 15); entropy cannot exceed log2 V.
    "low_below_bits": Limit(0, 15, above_low=True),
    "high_above_bits": Limit(0, 15, above_low=True),
    # Lossless mode's longest draft: a verify pass runs one position more than this.
    "lossless_max_draft": Limit(1, 64, whole=True),
}


def _plain(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def out_of_range(name: str, value: object) -> str | None:
    """Why `value` cannot be setting `name` ("must be ..., not nan"), or None when it can."""
    limit = LIMITS[name]
    if limit.allows(value):
        return None
    return f"must be {limit.describe()}, not {value!r}"
