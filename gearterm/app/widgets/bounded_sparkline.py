"""A sparkline with fixed bounds and marked thresholds, one column per value, newest at the right.

Textual's Sparkline rescales to the min and max of its data, so the same bar height means
different things from one moment to the next; pinned bounds (as nvitop draws history) let
the eye compare over time, and threshold rows show where the gear policy shifts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"  # index = eighths of a cell filled


class BoundedSparkline(Widget):
    DEFAULT_CSS = """
    BoundedSparkline { height: 4; }
    """

    data: reactive[tuple[float, ...]] = reactive((), layout=False)
    bounds: reactive[tuple[float, float]] = reactive((0.0, 1.0))
    thresholds: reactive[tuple[float, ...]] = reactive(())

    def __init__(
        self,
        *,
        color_of: Callable[[float], str] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ):
        super().__init__(id=id, classes=classes)
        self.color_of = color_of or (lambda value: "#5fafff")

    def show(self, values: Sequence[float], bounds: tuple[float, float], thresholds: Sequence[float] = ()) -> None:
        """Keep only as many values as there are columns; assigning new tuples triggers the refresh."""
        width = max(self.size.width, 1)
        self.data = tuple(values[-width:])
        self.bounds = bounds
        self.thresholds = tuple(thresholds)

    def render(self) -> Text:
        width, rows = self.size.width, max(self.size.height, 1)
        lo, hi = self.bounds
        span = (hi - lo) or 1.0
        values = self.data[-width:] if width else ()
        pad = width - len(values)

        def fraction(v: float) -> float:
            return min(max((v - lo) / span, 0.0), 1.0)

        threshold_rows = {min(int(fraction(t) * rows), rows - 1) for t in self.thresholds}
        eighths = [round(fraction(v) * rows * 8) for v in values]
        colors = [self.color_of(v) for v in values]
        text = Text(no_wrap=True, overflow="crop")
        for row in reversed(range(rows)):
            empty = "┈" if row in threshold_rows else " "
            text.append(empty * pad, style="dim")
            for filled, color in zip(eighths, colors):
                cell = min(max(filled - row * 8, 0), 8)
                if cell:
                    text.append(BARS[cell], style=color)
                else:
                    text.append(empty, style="dim")
            if row:
                text.append("\n")
        return text
