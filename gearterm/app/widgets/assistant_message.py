"""A reply: Markdown streamed from a buffer while it arrives, or its tokens tinted by gear.

The drain tick hands over everything that arrived since the last tick in one call, so the
Markdown widget sees at most about 20 writes a second; when the reply ends it gets one
final full update, which fixes anything the incremental parse got wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static

from gearterm.app.gear_colors import GEAR_COLORS
from kernels.gear import Gear


class AssistantMessage(Vertical):
    def __init__(self, heading: str, *, tinted: bool, text: str = "", pieces: Sequence[tuple[str, Gear]] = ()):
        super().__init__()
        self.heading = heading
        self.text = text
        self.pieces: list[tuple[str, Gear]] = list(pieces)  # (token text, gear that produced it)
        self.tinted = tinted
        self._stream = None

    def compose(self) -> ComposeResult:
        yield Static(self.heading, classes="heading", markup=False)
        yield Markdown(self.text)
        yield Static(classes="tinted")
        yield Static(classes="meta")

    def on_mount(self) -> None:
        self._show_tint()

    async def append(self, pieces: Sequence[tuple[str, Gear]]) -> None:
        """Everything that arrived since the last tick, as one write."""
        chunk = "".join(text for text, _ in pieces)
        self.pieces.extend(pieces)
        self.text += chunk
        if self.tinted:
            self._render_tinted()
        elif chunk:
            if self._stream is None:
                self._stream = Markdown.get_stream(self.query_one(Markdown))
            await self._stream.write(chunk)

    async def finish(self, meta: str) -> None:
        """The reply ended: stop streaming, render the full text once, say how it ended."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        await self.query_one(Markdown).update(self.text)
        self.query_one(".meta", Static).update(meta)

    async def set_tint(self, tinted: bool) -> None:
        if tinted == self.tinted:
            return
        self.tinted = tinted
        if not tinted:
            if self._stream is not None:
                await self._stream.stop()
                self._stream = None
            await self.query_one(Markdown).update(self.text)
        self._show_tint()

    def _show_tint(self) -> None:
        self.query_one(Markdown).display = not self.tinted
        self.query_one(".tinted", Static).display = self.tinted
        if self.tinted:
            self._render_tinted()

    def _render_tinted(self) -> None:
        text = Text()
        for piece, gear in self.pieces:
            text.append(piece, style=GEAR_COLORS[gear])
        self.query_one(".tinted", Static).update(text)
