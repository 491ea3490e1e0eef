"""What the chat log draws: user messages and replies, each rendered to lines at a width and cached.

A reply streams into its last segment. The text is cut into segments at the first blank line
outside a code fence past SEGMENT_CHARS, and an update re-renders only the last segment, so
the cost of a write stays flat however long the reply grows. When the reply ends, one final full update renders the whole
text as a single Markdown document, which also mends lists cut at a segment edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.markdown import Markdown
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.kernels.gear import Gear

SEGMENT_CHARS = 300  # a streaming segment longer than this closes at its next blank line; every write re-renders it
USER_STYLE = Style(bgcolor="#1e2f45")
QUIET = Style(dim=True)


class ChatMarkdown(Markdown):
    """Markdown in which a newline breaks the line, as a chat model means it (a poem, an address,
    lines of a list it did not mark up): CommonMark would join the lines with spaces."""

    def __init__(self, text: str):
        super().__init__(text)
        for block in self.parsed:
            for token in block.children or ():
                if token.type == "softbreak":
                    token.type = "hardbreak"


def render_lines(renderable: RenderableType, width: int, console: Console) -> list[Strip]:
    options = console.options.update_width(max(width, 1))
    return [Strip(line, width) for line in console.render_lines(renderable, options, pad=True)]


# eq=False throughout: an entry is found in the chat by identity; two messages "hi" are two entries.
@dataclass(eq=False)
class UserEntry:
    text: str
    _cache: tuple[int, list[Strip]] | None = None

    def lines(self, width: int, console: Console) -> list[Strip]:
        if self._cache is None or self._cache[0] != width:
            body = Padding(Text(self.text), (0, 1), style=USER_STYLE, expand=True)
            self._cache = (width, render_lines(Text("you", style=QUIET), width, console) + render_lines(body, width, console))
        return self._cache[1] + [Strip.blank(width)]


@dataclass(eq=False)
class Segment:
    text: str = ""
    pieces: list[tuple[str, Gear]] = field(default_factory=list)  # (token text, gear); empty for old replies
    _cache: tuple[tuple, list[Strip]] | None = None

    def lines(self, width: int, tinted: bool, console: Console) -> list[Strip]:
        key = (width, tinted, len(self.text))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, render_lines(self._content(tinted), width, console))
        return self._cache[1]

    def _content(self, tinted: bool) -> RenderableType:
        if not tinted:
            return ChatMarkdown(self.text)
        if not self.pieces:  # a reply saved without its token trace
            return Text(self.text)
        text = Text()
        for piece, gear in self.pieces:
            text.append(piece, style=GEAR_COLORS[gear])
        return text


@dataclass(eq=False)
class ReplyEntry:
    heading: str
    segments: list[Segment]
    meta: str = ""

    @classmethod
    def new(cls, heading: str, text: str = "", pieces: Sequence[tuple[str, Gear]] = ()) -> "ReplyEntry":
        return cls(heading, [Segment(text, list(pieces))])

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def append(self, pieces: Sequence[tuple[str, Gear]]) -> None:
        self.meta = ""  # a note while the prompt was read; the line under a reply comes at its end
        live = self.segments[-1]
        live.pieces.extend(pieces)
        live.text += "".join(text for text, _ in pieces)
        while len(live.text) > SEGMENT_CHARS and (cut := _cut(live)) is not None:
            closed, rest = live.pieces[:cut], live.pieces[cut:]
            live = Segment("".join(t for t, _ in rest), rest)
            self.segments[-1:] = [Segment("".join(t for t, _ in closed), closed), live]

    def finish(self, meta: str) -> None:
        """The final full update: one segment, rendered as one document."""
        self.segments = [Segment(self.text, [p for s in self.segments for p in s.pieces])]
        self.meta = meta

    def resume(self) -> None:
        """More text is coming (the reply is being continued): the line under it waits for the new end."""
        self.meta = ""
        live = self.segments[-1]
        if "".join(text for text, _ in live.pieces) != live.text:  # text without its token trace cannot be cut
            self.segments.append(Segment())

    def lines(self, width: int, tinted: bool, console: Console) -> list[Strip]:
        heading = Text(self.heading, style=QUIET)
        if tinted:  # the tint's legend, where the colours are
            heading.append("  tint:", style=QUIET)
            for gear in Gear:
                heading.append(f" {gear.label}", style=GEAR_COLORS[gear])
        lines = render_lines(heading, width, console)
        for i, segment in enumerate(self.segments):
            if i and not tinted:
                lines.append(Strip.blank(width))  # the blank line Markdown puts between blocks
            lines += segment.lines(width, tinted, console)
        if self.meta:
            lines += render_lines(Text(self.meta, style=QUIET), width, console)
        return lines + [Strip.blank(width)]


def _cut(segment: Segment) -> int | None:
    """The first token boundary past SEGMENT_CHARS on a blank line outside a code fence, if any.

    The first, not the last: where a segment ends then depends on the text alone, not on how
    the tokens happened to be batched into writes."""
    starts, position = [], 0
    for piece, _ in segment.pieces:
        starts.append(position)
        position += len(piece)
    text = segment.text
    for i in range(1, len(segment.pieces)):
        at = starts[i]
        if at < SEGMENT_CHARS:
            continue
        on_blank_line = text.endswith("\n\n", 0, at) or text.startswith("\n\n", at) or (
            text.endswith("\n", 0, at) and text.startswith("\n", at)
        )
        if on_blank_line and text.count("```", 0, at) % 2 == 0:
            return i
    return None
