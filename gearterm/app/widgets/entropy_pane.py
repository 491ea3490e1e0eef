"""The entropy pane: next-token entropy of the last tokens on a pinned scale, with the gear thresholds.

The scale is pinned, so that a bar's height means the same from one moment to the next, but
not at log2 V: trained models sit far below it (0-6 bits of a possible 15.6 at a 49k
vocabulary), which left the top half of the chart empty. It starts at twice the high
threshold, rounded up to whole steps, and grows a step at a time when an entropy of this chat
would not fit; it never shrinks within a chat and never passes log2 V.
"""

from __future__ import annotations

import math

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.app.readings import MEAN_WINDOW, Readings
from gearterm.app.widgets.bounded_sparkline import BoundedSparkline
from gearterm.app.widgets.pane_text import PaneText
from gearterm.kernels.gear import Gear

SCALE_STEP_BITS = 2.0  # the chart's top is a whole number of these
# A widget of its own, drawn once: the figures above it are wrapped again at every redraw.
LEGEND = "[dim]colour = gear asked:[/] " + " ".join(f"[{GEAR_COLORS[g]}]█ {g.label}[/]" for g in Gear)


class EntropyPane(Vertical):
    def __init__(self, ceiling_bits: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.ceiling_bits = ceiling_bits  # from the config; 0 = log2 of the vocabulary
        self._low = self._high = None

    def compose(self) -> ComposeResult:
        yield BoundedSparkline(color_of=self._color_of, id="entropy-sparkline")
        yield PaneText(id="entropy-figures")
        yield Static(LEGEND, id="entropy-legend")

    def on_mount(self) -> None:
        self.border_title = "Entropy · bits per token"

    def _color_of(self, bits: float) -> str:
        if self._low is not None and bits < self._low:
            return GEAR_COLORS[Gear.LOW]
        if self._high is not None and bits > self._high:
            return GEAR_COLORS[Gear.HIGH]
        return GEAR_COLORS[Gear.MID]

    def show(self, readings: Readings) -> None:
        figures = self.query_one("#entropy-figures", PaneText)
        if readings.capabilities is None:
            self.query_one(BoundedSparkline).show((), (0.0, 1.0))
            figures.show("n/a — no model loaded")
            return
        if self.ceiling_bits:
            top, scale = self.ceiling_bits, f"0–{self.ceiling_bits:g} (ceiling from config)"
        else:
            top, scale = _fitted_scale(readings)
        self._low, self._high = readings.low_bits, readings.high_bits
        thresholds = tuple(t for t in (self._low, self._high) if t is not None)
        self.query_one(BoundedSparkline).show(tuple(readings.entropy), (0.0, top), thresholds)

        now, mean = readings.entropy_now, readings.entropy_mean
        lines = [
            f"now {_bits(now)}  mean {_bits(mean)} [dim](last {MEAN_WINDOW} tokens)[/]",
            f"scale {scale}",
        ]
        if self._low is not None:
            source = "calibrated to the prompt" if readings.thresholds_calibrated else "defaults"
            lines.append(f"┈ low < {self._low:.2f} · high > {self._high:.2f} [dim]({source})[/]")
        if readings.capabilities.entropy == "topk":
            lines.append(
                f"top-k bounds now {_bits(readings.entropy_lower)}–{_bits(readings.entropy_upper)};"
                f" the gear follows the {readings.entropy_source or 'lower'} bound"
            )
        if readings.anomaly:
            lines.append(f"[b red]anomaly: {escape(readings.anomaly)} → high gear[/]")
        figures.show("\n".join(lines))


def _fitted_scale(readings: Readings) -> tuple[float, str]:
    """The chart's top in bits, and how the pane says it."""
    most = readings.max_bits
    need = max(2 * (readings.high_bits or 0.0), readings.entropy_peak or 0.0, SCALE_STEP_BITS)
    top = math.ceil(need / SCALE_STEP_BITS) * SCALE_STEP_BITS
    if most is None:
        return top, f"0–{top:g}, fits this chat (V unknown)"
    if top >= most:
        return most, f"0–{most:.2f} = log2 V, the most possible"
    return top, f"0–{top:g}, fits this chat (log2 V {most:.1f})"


def _bits(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
