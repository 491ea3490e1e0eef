"""The power pane: GPU watts now, their history on a fixed scale, and joules per token by gear."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.app.widgets.bounded_sparkline import BoundedSparkline
from kernels.gear import Gear


@dataclass(frozen=True)
class PowerView:
    """What the pane shows; watts None means no meter, and `note` says why."""

    watts: float | None
    note: str  # where the figure comes from, or why there is none
    history: Sequence[float] = ()
    top_watts: float = 0.0  # fixed top of the history scale (the power limit where known)
    joules_per_token_reply: float | None = None
    joules_per_token_by_gear: Mapping[Gear, float] = field(default_factory=dict)


class PowerPane(Vertical):
    def compose(self) -> ComposeResult:
        yield BoundedSparkline(color_of=lambda w: "#af87ff", id="power-sparkline")
        yield Static(id="power-figures")

    def on_mount(self) -> None:
        self.border_title = "Power"

    def show(self, view: PowerView) -> None:
        sparkline = self.query_one(BoundedSparkline)
        figures = self.query_one("#power-figures", Static)
        if view.watts is None:
            sparkline.display = False
            figures.update(f"n/a — {view.note}")
            return
        sparkline.display = True
        sparkline.show(view.history, (0.0, view.top_watts or max(view.history, default=1.0)))
        lines = [
            f"{view.watts:.0f} W now  [dim]({view.note})[/]",
            f"[dim]scale 0–{view.top_watts:.0f} W[/]",
            f"{_joules(view.joules_per_token_reply)} J/token this reply",
        ]
        per_gear = "  ".join(
            f"[{GEAR_COLORS[g]}]{g.label}[/] {_joules(view.joules_per_token_by_gear.get(g))}" for g in Gear
        )
        lines.append(f"J/token by gear: {per_gear}")
        figures.update("\n".join(lines))


def _joules(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
