"""The power pane: GPU watts now, their history on a fixed scale, and joules per token by gear."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical

from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.app.widgets.bounded_sparkline import BoundedSparkline
from gearterm.app.widgets.pane_text import PaneText
from gearterm.telemetry.power import PowerReading
from gearterm.kernels.gear import Gear


class PowerPane(Vertical):
    def compose(self) -> ComposeResult:
        yield BoundedSparkline(color_of=lambda w: "#af87ff", id="power-sparkline")
        yield PaneText(id="power-figures")

    def on_mount(self) -> None:
        self.border_title = "Power"

    def show(self, view: PowerReading) -> None:
        sparkline = self.query_one(BoundedSparkline)
        figures = self.query_one("#power-figures", PaneText)
        if view.watts is None:
            if sparkline.display:
                sparkline.display = False
            figures.show(f"n/a — {escape(view.note)}")
            return
        if not sparkline.display:
            sparkline.display = True
        if view.power_limit_watts:
            top, scale = view.power_limit_watts, f"scale 0–{view.power_limit_watts:.0f} W (the power limit)"
        else:
            top = max(view.history)
            scale = f"scale 0–{top:.0f} W (highest seen; no power limit reported)"
        sparkline.show(view.history, (0.0, top))
        lines = [f"{view.watts:.0f} W now  [dim]({escape(view.note)})[/]", f"[dim]{scale}[/]"]
        if view.energy_note:
            lines.append(f"J/token n/a — {escape(view.energy_note)}")
        else:
            lines.append(
                f"{_joules(view.joules_per_token_reply)} J/token this reply, {_joules(view.joules_per_token)} session"
            )
        per_gear = "  ".join(
            f"[{GEAR_COLORS[g]}]{g.label}[/] {_joules(view.joules_per_token_by_gear.get(g))}" for g in Gear
        )
        lines.append(f"J/token by gear: {per_gear}")
        figures.show("\n".join(lines))


def _joules(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
