"""The text of a pane: redrawn only when it changed, laid out again only when its height may have.

A layout pass re-measures the whole screen; at 20 updates a second, asking for one on
every pane update would cost more than the chat itself.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class PaneText(Static):
    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._shown: str | Text | None = None
        self._lines = 0

    def show(self, content: str | Text) -> None:
        if content == self._shown:
            return
        plain = content.plain if isinstance(content, Text) else Text.from_markup(content).plain
        lines = plain.split("\n")
        may_wrap = max(map(len, lines)) > self.size.width  # a long line (a reason for "n/a") wraps
        self.update(content, layout=may_wrap or len(lines) != self._lines)
        self._shown, self._lines = content, len(lines)
