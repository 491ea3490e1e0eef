"""Which gear drafts lossless mode's next cycle, where the user lets gearterm choose: the one whose
recent cycles cost the least time per kept token, measured; or none, a plain high-gear step.

Neither draft gear wins everywhere. The low gear drafts faster; the mid gear's drafts are kept
more often. On the pocket model low drafts win; on SmolLM2-135M, whose 16-bit weights come from a
4-bit GGUF, the low gear's requantized drafts are kept 60-72% of the time and mid's 99-100%, and
mid wins (docs/benchmarks/lossless-cpu.md). And on some machines neither pays: on a CPU whose
float32 product keeps up with the gear kernel, a draft step costs as much as a high step, and
drafting made replies 25-45% slower than forced high. Gear.HIGH stands for drafting nothing: the
cycle is one forced-high step, so lossless mode is not slower than forced high for long. What a
kept token costs (the drafting, the verify pass, the drafts thrown away) is measured per cycle,
so the choice follows the machine and the text.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence

from gearterm.kernels.gear import Gear

FIRST_TRIAL = 4  # cycles each gear drafts before the first choice
RECENT = 8  # a gear's cost: the median of its last this many cycles (a compile or a busy moment is one outlier)
REVISIT = 16  # a gear not chosen drafts one cycle after this many of the other's, in case the text changed


class DraftChoice:
    def __init__(self, gears: Sequence[Gear]):
        """`gears`: the choices, in the order first tried (Gear.HIGH: no drafts)."""
        if not gears:
            raise ValueError("a draft choice needs at least one gear")
        self.gears = tuple(gears)
        self.costs: dict[Gear, deque[float]] = {g: deque(maxlen=RECENT) for g in gears}
        self.idle = dict.fromkeys(gears, 0)  # cycles since each gear last drafted

    def gear(self) -> Gear:
        for g, costs in self.costs.items():
            if len(costs) < FIRST_TRIAL:
                return g
        for g, idle in self.idle.items():
            if idle >= REVISIT:
                return g
        return min(self.costs, key=self.cost)

    def cost(self, gear: Gear) -> float:
        """Seconds per kept token of the gear's recent cycles (inf before it drafted)."""
        return statistics.median(self.costs[gear]) if self.costs[gear] else float("inf")

    def update(self, gear: Gear, seconds: float, kept: int) -> None:
        self.costs[gear].append(seconds / kept)
        for g in self.idle:
            self.idle[g] = 0 if g is gear else self.idle[g] + 1


def parse_draft_gear(name: str) -> Gear | None:
    """A `lossless_draft` setting: "low" or "mid", or "auto" (None: measured, as above)."""
    return None if name == "auto" else Gear.parse(name)
