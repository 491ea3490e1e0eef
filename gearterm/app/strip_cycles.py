"""No reference cycle for each line drawn: Textual's Strip keeps a strip in its own cache when
`divide` or `crop_extend` leaves it whole (textual 8.2: `strips = [self]` and `strip = self`,
then cached under the call's key). Every line the compositor draws within one region goes
through `divide` whole, and the chat's lines through `crop_extend`, so every frame left its
strips, each with seven caches, for the cycle collector: 20,000 objects a second at 500
tokens/s (`gearterm bench ui`), and collections of 10 ms (30-45 ms with both cores busy) that
a key pressed meanwhile waited for. Here those two calls return the strip itself without
caching it; every other call goes to Textual's own method, cache and all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.style import Style
from textual.strip import Strip

_divide, _crop_extend = Strip.divide, Strip.crop_extend


def _divide_whole(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    cuts = [cut for cut in cuts if cut <= self.cell_length]
    return [self] if cuts == [self.cell_length] else _divide(self, cuts)


def _crop_extend_whole(self: Strip, start: int, end: int, style: Style | None) -> Strip:
    return self if start == 0 and end == self.cell_length else _crop_extend(self, start, end, style)


def install() -> None:
    """Patch Strip once, for the whole process (strips are Textual's, shared by every widget)."""
    Strip.divide, Strip.crop_extend = _divide_whole, _crop_extend_whole
