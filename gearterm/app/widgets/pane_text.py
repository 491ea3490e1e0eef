"""The text of a pane: redrawn only when it changed, laid out again only when its height did.

A layout pass re-measures and re-arranges the whole screen, and the frame after it waits for
that; asking for one on every pane update (10 a second while a reply streams) would hold key
presses behind it. The new text is wrapped at the pane's width as Textual will draw it, and a
layout is asked for only when that gives a different number of lines.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class PaneText(Static):
    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._shown: str | Text | None = None

    def show(self, content: str | Text) -> None:
        if content == self._shown:
            return
        self._shown = content
        self.update(content, layout=False)
        width = self.content_size.width
        if not width:  # not laid out yet: the first layout measures it
            self.refresh(layout=True)
            return
        # The height Textual will lay the new text out at (cached for that layout, if one follows).
        if self.get_content_height(self.content_size, self.app.size, width) != self.content_size.height:
            self.refresh(layout=True)
