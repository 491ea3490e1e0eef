"""A line drawn whole leaves no reference cycle behind (gearterm/app/strip_cycles.py), and every
Strip call gives what Textual's own gives."""

import gc

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from gearterm.app import strip_cycles

PAD = Style(bgcolor="blue")


def _line() -> Strip:
    return Strip([Segment("gears "), Segment("shift", Style(bold=True))])


def test_a_strip_divided_or_cropped_whole_is_freed_without_the_cycle_collector():
    strip_cycles.install()
    gc.collect()
    gc.disable()
    try:
        line = _line()
        assert line.divide([11]) == [line] and line.divide([11, 40])[0] is line
        assert line.crop_extend(0, 11, PAD) is line
        del line
        assert gc.collect() == 0  # Textual's own caches the strip in itself: a cycle of 8 objects
    finally:
        gc.enable()


def test_every_other_call_is_textuals_own():
    strip_cycles.install()
    line = _line()
    for cuts in ([3, 11], [6], [0, 5, 11], [4, 20]):
        assert line.divide(cuts) == strip_cycles._divide(_line(), cuts)
    for start, end in ((0, 15), (2, 11), (2, 15), (0, 4)):
        assert line.crop_extend(start, end, PAD) == strip_cycles._crop_extend(_line(), start, end, PAD)
