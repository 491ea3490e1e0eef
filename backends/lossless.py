"""Lossless mode: the draft gear proposes a few tokens, one high-gear pass verifies them all.

All gears share one set of weights, so this is self-speculative decoding with nothing extra
to load. A cycle starts from the last kept token, which the KV cache does not hold yet: the
draft gear (low, or mid) runs it and its own proposals one position at a time, k steps; then
one high-gear forward pass over the last kept token and the k drafts (T = k + 1, at the same
cache positions) gives the high gear's logits at every one of them. The longest prefix of
drafts the high gear agrees with is kept, and then one token of the high gear's own. The
verify pass wrote high-gear keys and values over the draft's at every position it ran, and
the positions after the kept ones are forgotten, so each cycle ends with the cache holding
exactly what forced high would hold.

Greedy: a draft is kept where it is the high gear's argmax, so the reply is forced high's,
token for token (up to the last bits of floating point: a verify pass multiplies k + 1 rows
at a time, a step one). Sampling: the speculative sampling rule (Leviathan et al. 2023,
Chen et al. 2023): draft x, drawn from q, is kept with probability min(1, p(x) / q(x)); at the
first rejection the token is drawn from max(0, p - q), renormalized; after a wholly kept
draft, from p. p and q are the distributions the sampler draws from (temperature and top-p
applied to each the same way, backends.sampling), so every token is distributed as forced
high's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gearterm.backends.base import GenerationParams
from gearterm.backends.draft_choice import DraftChoice
from gearterm.backends.sampling import sampling_probs
from gearterm.kernels.entropy import entropy_varentropy, logit_readings
from gearterm.kernels.gear import Gear, GearSelector

FIRST_DRAFT = 4  # tokens the first cycle of a reply drafts (at most the configured maximum)

# (token ids, position of the first) -> logits [T, V] at the selector's gear; the KV cache
# then holds those positions and none after them
RunPositions = Callable[[list[int], int], torch.Tensor]


@dataclass(frozen=True)
class KeptToken:
    """One token a cycle kept, measured on the high gear's logits at its position."""

    token_id: int
    from_draft: bool  # a drafted token the high gear agreed with; else the high gear's own
    entropy_bits: float
    varentropy_bits2: float
    logprob: float


@dataclass(frozen=True)
class Cycle:
    kept: list[KeptToken]  # the accepted drafts, then the high gear's own token
    drafted: int  # tokens the draft gear proposed
    draft_gear: Gear


class DraftLength:
    """How many tokens the next cycle drafts: one more after a wholly accepted draft, one
    fewer after a rejection in the first half of a draft, between 1 and `most`."""

    def __init__(self, most: int):
        if most < 1:
            raise ValueError(f"the longest draft must be at least 1 token, got {most}")
        self.most = most
        self.k = min(FIRST_DRAFT, most)

    def update(self, drafted: int, accepted: int) -> None:
        if drafted == self.k and accepted == drafted:
            self.k = min(self.k + 1, self.most)
        elif accepted < drafted / 2:
            self.k = max(self.k - 1, 1)


class LosslessDecoding:
    """One reply's draft-and-verify cycles over a backend's `run`."""

    def __init__(
        self,
        run: RunPositions,
        selector: GearSelector,
        params: GenerationParams,
        drafts: DraftChoice,
        max_draft: int = 8,
        stop_above_bits: float | None = None,
    ):
        """`drafts` picks each cycle's draft gear and is told what the cycle cost.
        `stop_above_bits`: a draft token drawn where the draft gear's entropy is above this
        ends the draft (None: drafts run to their length)."""
        self.run, self.selector, self.params, self.drafts = run, selector, params, drafts
        # Each draft gear's own k; the high gear alone drafts nothing (a forced-high step).
        self.lengths = {gear: DraftLength(max_draft) for gear in drafts.gears if gear is not Gear.HIGH}
        self.stop_above_bits = stop_above_bits
        self.greedy = params.temperature == 0
        self._generator: torch.Generator | None = None

    def cycle(self, last: int, pos: int, most: int) -> Cycle:
        """From `last`, the last kept token, whose position `pos` the cache does not hold yet:
        draft, verify, and return the tokens kept (at most `most`, at least 1)."""
        start = time.perf_counter()
        draft_gear = self.drafts.gear()
        length = self.lengths.get(draft_gear)
        longest = 0 if length is None else min(length.k, most - 1)
        drafts, draft_probs = [], []
        self.selector.gear = draft_gear
        token = last
        for i in range(longest):
            logits = self.run([token], pos + i)[-1]
            token, q, entropy = self._propose(logits)
            drafts.append(token)
            draft_probs.append(q)
            if self.stop_above_bits is not None and entropy > self.stop_above_bits:
                break
        self.selector.gear = Gear.HIGH
        high = self.run([last, *drafts], pos)
        accepted, own = self._verify(drafts, draft_probs, high)  # on the host: the cycle's work is done
        self.drafts.update(draft_gear, time.perf_counter() - start, accepted + 1)
        if length is not None:
            length.update(len(drafts), accepted)
        ids = [*drafts[:accepted], own]
        return Cycle(_measure(high[: accepted + 1], ids, accepted), len(drafts), draft_gear)

    def _propose(self, logits: torch.Tensor) -> tuple[int, torch.Tensor | None, float]:
        """A draft token from the draft gear's logits, the distribution it came from (None:
        greedy) and that distribution's entropy in bits, read in one host sync."""
        argmax, entropy = logit_readings(logits)[:2]
        if self.greedy:
            token, entropy = torch.stack([argmax, entropy]).tolist()
            return int(token), None, entropy
        q = sampling_probs(logits, self.params)
        token = torch.multinomial(q, 1, generator=self._rng(q.device))[0]
        token, entropy = torch.stack([token.float(), entropy]).tolist()
        return int(token), q, entropy

    def _verify(self, drafts: list[int], draft_probs: list, high: torch.Tensor) -> tuple[int, int]:
        """(drafts accepted, the high gear's own token after them) from the verify pass's logits."""
        if self.greedy:
            best = high.argmax(-1).tolist()
            accepted = next((i for i, d in enumerate(drafts) if best[i] != d), len(drafts))
            return accepted, best[accepted]
        p = sampling_probs(high, self.params)
        p = p / p.sum(-1, keepdim=True)  # a top-p cut leaves rows that sum to less than 1
        accepted = len(drafts)
        if drafts:
            q = torch.stack(draft_probs)
            q = q / q.sum(-1, keepdim=True)
            rows, ids = torch.arange(len(drafts), device=p.device), torch.tensor(drafts, device=p.device)
            u = torch.rand(len(drafts), generator=self._rng(p.device), device=p.device)
            kept = (u * q[rows, ids] < p[rows, ids]).tolist()  # u < p/q, without dividing by q
            accepted = kept.index(False) if False in kept else len(drafts)
        if accepted < len(drafts):
            residual = (p[accepted] - q[accepted]).clamp_min(0)
            # A rejection means p(x) < q(x), so p exceeds q somewhere; rounding aside.
            dist = residual if residual.sum() > 0 else p[accepted]
        else:
            dist = p[accepted]
        return accepted, int(torch.multinomial(dist, 1, generator=self._rng(p.device)).item())

    def _rng(self, device: torch.device) -> torch.Generator:
        if self._generator is None:
            seed = self.params.seed if self.params.seed is not None else random.getrandbits(63)
            self._generator = torch.Generator(device).manual_seed(seed)
        return self._generator


def _measure(logits: torch.Tensor, ids: Sequence[int], accepted: int) -> list[KeptToken]:
    """Entropy, varentropy and logprob of each kept token from the high gear's logits at its
    position (the distribution it was verified against): one host read for the cycle."""
    h, v = entropy_varentropy(logits)
    logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids, device=logits.device)[:, None])[:, 0]
    rows = torch.stack([h, v, logp], -1).tolist()
    return [KeptToken(t, i < accepted, *row) for i, (t, row) in enumerate(zip(ids, rows))]
