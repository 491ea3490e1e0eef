"""Reuse of the KV cache across replies: a new prompt that begins as the cached one did (the
next turn of a chat, a regenerate, an edit further back) runs only the positions after the
longest prefix the two share.

Which positions are reused: only those whose keys and values were computed at the gear this
prompt runs at (the selector's, as the prompt's first pass: high in auto mode, else the forced
gear). The reply's tokens were decoded in whatever gear the policy chose: where that was not
the prompt's gear, the prompt runs them again from there, so that reuse changes no output; a
fresh prompt would have read them at its own gear. Everything after the first position not
reused is run again too, since its keys and values attended over that position.

The entropy at each cached position is kept beside it, so the gear policy calibrates on the
whole prompt's entropies, as after a fresh prompt, and not on the new positions' alone.

Going back: gearterm's decoder keeps every position, its sliding-window layers included (the
window is a mask), so it can go back to any prefix. mlx-lm's rotating caches (sliding windows)
cannot once they have wrapped around: then the prompt is read afresh. A conversation that
outgrows the context drops its oldest turns (backends.context_fit): the prompt then differs
right after the system prompt, and only that much is reused.
"""

from __future__ import annotations

from collections.abc import Sequence

from gearterm.kernels.gear import Gear


class CachedTokens:
    """Position by position, what a backend's KV cache holds: the token read there, the gear
    its keys and values were computed at, and the entropy in bits of the logits computed there."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.gears: list[Gear] = []
        self.entropies: list[float] = []

    def __len__(self) -> int:
        return len(self.ids)

    def reusable(self, ids: Sequence[int], gear: Gear) -> int:
        """How many leading positions of prompt `ids` the cache holds, computed at `gear`. One
        short of the whole prompt at most: its last position's logits give the reply's first token."""
        n, most = 0, min(len(self.ids), len(ids) - 1)
        while n < most and self.ids[n] == ids[n] and self.gears[n] == gear:
            n += 1
        return n

    def keep(self, positions: int) -> None:
        """Forget every position from `positions` on (the cache is about to be written there)."""
        del self.ids[positions:], self.gears[positions:], self.entropies[positions:]

    def add(self, ids: Sequence[int], gear: Gear, entropies: Sequence[float]) -> None:
        self.ids += ids
        self.gears += [gear] * len(ids)
        self.entropies += entropies
