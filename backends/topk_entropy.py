"""Bounds on next-token entropy when a server gives only the top-k log-probabilities.

With the k listed probabilities p_i and the missing mass r = 1 - sum p_i, the unlisted
tokens contribute at least -r ln r (all of r on one token) and at most -r ln(r / (V - k))
(r spread evenly over the V - k others). So

    H_lb = -sum p_i ln p_i - r ln r,    H_ub = H_lb + r ln(V - k),

both exact when the distribution is all listed (r = 0) or only one token is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LN2 = math.log(2.0)
# llama.cpp writes log(0) as the most negative float (about -3.4e38): a probability of zero.
ZERO_LOGPROB = -1e30


@dataclass(frozen=True)
class EntropyBounds:
    lower_bits: float
    upper_bits: float | None  # None when the vocabulary size is unknown
    missing_mass: float  # r: the probability of all tokens not listed
    listed: int  # k: how many probabilities were listed (zeros not counted)

    @property
    def exact(self) -> bool:
        """True when the bounds meet: the whole distribution was listed."""
        return self.upper_bits is not None and self.upper_bits == self.lower_bits


def entropy_bounds(logprobs: Iterable[float], vocab_size: int | None) -> EntropyBounds:
    """Entropy bounds in bits from the natural-log probabilities of k distinct tokens."""
    probs = [math.exp(lp) for lp in logprobs if lp > ZERO_LOGPROB]
    k = len(probs)
    # The listed probabilities can sum past 1 by float rounding: the missing mass is then 0.
    r = max(0.0, 1.0 - math.fsum(probs))
    nats = -math.fsum(p * math.log(p) for p in probs if p > 0)
    if r > 0:
        nats -= r * math.log(r)
    upper = None
    if vocab_size is not None:
        # Never fewer than one unlisted slot for r: a server may list more than V distinct tokens.
        upper = (nats + r * math.log(max(vocab_size - k, 1))) / LN2
    return EntropyBounds(lower_bits=nats / LN2, upper_bits=upper, missing_mass=r, listed=k)


def is_speculative_draft(logprob: float | None, alternatives: list | None) -> bool:
    """A token drafted by speculative decoding comes back with logprob 0 and no alternatives.

    Its distribution was never measured; reporting entropy 0 for it would be made up."""
    return logprob == 0 and not alternatives
