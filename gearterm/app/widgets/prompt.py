"""The prompt: Textual's Input, except that typing into it does not lay out the whole screen.

Input keeps its virtual width equal to its text's, and that reactive asks for a layout of the
screen at every key press, a pass over every widget while a reply streams. The prompt's size
never depends on its text; its horizontal scroll limit is read from virtual_size directly,
so a repaint is enough.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Input


class Prompt(Input):
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)
