"""The pane strip: the side panes' four headline figures on one line, shown instead of the panes
where the terminal is too narrow for them beside the chat, or when the user hid them.

Each figure names what it is; one that is unknown says n/a, and the power figure says why where
the line has room (the power pane always does). Where it has not, the reason goes first, then whole
figures from the line's end: never one cut part way (at 80 columns "power n/a: NVML" was seen, of
"power n/a: NVML library not found (no NVIDIA driver on this machine)")."""

from __future__ import annotations

from rich.text import Text

from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.app.readings import Readings
from gearterm.app.widgets.one_line import fitted, joined
from gearterm.app.widgets.pane_text import PaneText
from gearterm.telemetry.power import PowerReading


class PaneStrip(PaneText):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.readings: Readings | None = None
        self.power = PowerReading(None, "not read yet")

    def show_readings(self, readings: Readings) -> None:
        self.readings = readings
        self._draw()

    def show_power(self, power: PowerReading) -> None:
        self.power = power
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        readings = self.readings
        gear = readings.gear if readings else None
        if gear is None:
            first = Text("gear n/a: no tokens yet")
        else:
            bits = readings.bits_of(gear)
            label = f"gear {bits}-bit {gear.label}" if bits else f"gear {gear.label} (another model's)"
            first = Text.assemble((label, GEAR_COLORS[gear]))
        if readings is not None:
            first.append(f", mode {readings.gear_mode.value}")
        entropy = readings.entropy_now if readings else None
        rate = readings.tokens_per_s if readings else None
        fields = {
            "gear": first,
            "entropy": Text("entropy " + ("n/a" if entropy is None else f"{entropy:.2f} bits")),
            "rate": Text("tok/s n/a" if rate is None else f"{rate:.1f} tok/s"),
            "power": Text("power n/a: " + self.power.note if self.power.watts is None else f"{self.power.watts:.0f} W"),
        }
        width = self.content_size.width
        if self.power.watts is None and width and joined(fields).cell_len > width:
            fields["power"] = Text("power n/a")
        line = fitted(fields, ("power", "rate", "entropy"), width)
        line.no_wrap, line.overflow = True, "ellipsis"
        self.show(line)
