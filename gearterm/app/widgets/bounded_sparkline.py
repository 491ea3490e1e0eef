"""A sparkline with fixed bounds and marked thresholds, one column per value, newest at the right.

Textual's Sparkline rescales to the min and max of its data, so the same bar height means
different things from one moment to the next; pinned bounds (as nvitop draws history) let
the eye compare over time, and threshold rows show where the gear policy shifts.
Drawn line by line from segments (runs of one colour), as it redraws up to 20 times a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"  # index = eighths of a cell filled
THRESHOLD = "┈"
KEEP = 512  # values kept: more than any pane is wide
MAX_COLUMNS_PER_VALUE = 4


@lru_cache(maxsize=64)
def _style(color: str | None) -> Style:
    return Style(dim=True) if color is None else Style(color=color)


class BoundedSparkline(Widget):
    DEFAULT_CSS = """
    BoundedSparkline { height: 4; }
    """

    data: reactive[tuple[float, ...]] = reactive(())
    bounds: reactive[tuple[float, float]] = reactive((0.0, 1.0))
    thresholds: reactive[tuple[float, ...]] = reactive(())

    def __init__(
        self,
        *,
        color_of: Callable[[float], str] | None = None,
        fit: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ):
        """`fit`: few values (one per layer, say) are widened to fill the width, up to 4 columns each;
        otherwise each value is one column and the newest are shown."""
        super().__init__(id=id, classes=classes)
        self.color_of = color_of or (lambda value: "#5fafff")
        self.fit = fit

    def show(self, values: Sequence[float], bounds: tuple[float, float], thresholds: Sequence[float] = ()) -> None:
        """Assigning new tuples triggers the redraw; the width is applied when drawing."""
        self.data = tuple(values[-KEEP:])
        self.bounds = bounds
        self.thresholds = tuple(thresholds)

    def render_line(self, y: int) -> Strip:
        width, rows = self.size.width, max(self.size.height, 1)
        row = rows - 1 - y  # 0 = bottom row
        lo, hi = self.bounds
        span = (hi - lo) or 1.0

        def fraction(v: float) -> float:
            return min(max((v - lo) / span, 0.0), 1.0)

        empty = THRESHOLD if any(min(int(fraction(t) * rows), rows - 1) == row for t in self.thresholds) else " "
        values = self.data
        if self.fit and values:
            per = min(MAX_COLUMNS_PER_VALUE, max(1, width // len(values)))
            values = tuple(v for v in values for _ in range(per))
        values = values[-width:] if width else ()
        cells: list[tuple[str, str | None]] = [(empty, None)] * (width - len(values))
        for v in values:
            filled = min(max(round(fraction(v) * rows * 8) - row * 8, 0), 8)
            cells.append((BARS[filled], self.color_of(v)) if filled else (empty, None))
        segments: list[Segment] = []
        run_text, run_color = "", None
        for char, color in cells:
            if color != run_color and run_text:
                segments.append(Segment(run_text, _style(run_color)))
                run_text = ""
            run_text += char
            run_color = color
        if run_text:
            segments.append(Segment(run_text, _style(run_color)))
        return Strip(segments, width).apply_style(self.rich_style)
