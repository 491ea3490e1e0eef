"""The gear pane: the gear of the latest token in large type, the gear mix, shifts and the mode."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits

from backends.gearbox import GearMode
from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.app.readings import Readings
from gearterm.app.widgets.pane_text import PaneText
from kernels.gear import Gear

MIX_BAR = 10  # cells in each gear mix bar


class GearPane(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(id="gear-now"):
            yield Digits("--", id="gear-bits")
            yield PaneText(id="gear-label")
        yield PaneText(id="gear-mix")

    def on_mount(self) -> None:
        self.border_title = "Gear · weight precision"

    def show(self, readings: Readings) -> None:
        gear = readings.gear
        digits = self.query_one("#gear-bits", Digits)
        value = str(gear.bits) if gear is not None else "--"
        if digits.value != value:
            digits.update(value)
        for g in Gear:
            digits.set_class(g is gear, f"gear-{g.label}")
        label = f"-bit {gear.label} gear" if gear is not None else "no tokens yet"
        label += f"\nnext: {readings.next_gear.label}" if readings.next_gear is not None else "\n"
        mode, running = readings.gear_mode, readings.streaming_mode
        label += f"\nmode {mode.value}" + ("" if mode is GearMode.AUTO else ", forced")
        if running is not None and running is not mode:  # the reply in flight keeps its own
            label += f" [b]next reply[/]; now {running.value}"
        else:
            label += " [dim](f3 cycles)[/]"
        self.query_one("#gear-label", PaneText).show(label)

        mix = Text(no_wrap=True, overflow="ellipsis")
        _append_mix(mix, "reply", readings.reply_gears)
        _append_mix(mix, "session", readings.session_gears)
        mix.append(f"shifts {readings.reply_shifts} this reply, {readings.session_shifts} session")
        self.query_one("#gear-mix", PaneText).show(mix)


def _append_mix(text: Text, name: str, counts: Counter) -> None:
    """A bar split by gear, then the share of tokens each gear produced."""
    total = sum(counts.values())
    text.append(f"{name:<7} ")
    if not total:
        text.append("·" * MIX_BAR, style="dim")
        text.append(" no tokens\n", style="dim")
        return
    cells = {g: round(MIX_BAR * counts[g] / total) for g in Gear}
    cells[max(Gear, key=lambda g: counts[g])] += MIX_BAR - sum(cells.values())  # rounding lands on the largest
    for g in Gear:
        text.append("█" * cells[g], style=GEAR_COLORS[g])
    shares = " ".join(f"{g.label[0].upper()}{100 * counts[g] / total:.0f}" for g in Gear)
    text.append(f" {shares}% n={total}\n")
