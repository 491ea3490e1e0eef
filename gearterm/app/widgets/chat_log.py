"""The chat: one scrolling widget that draws its messages line by line from cached renders.

A widget per message (or per Markdown block) makes every streamed write re-lay out the
whole screen; at 500 tokens/s that held key presses for over 100 ms on a 2-core machine.
Here a write re-renders the one entry that changed and draws only the visible lines.
It stays scrolled to the newest line unless the user has scrolled up. Text can be selected
with the mouse and copied (ctrl+c). A letter typed while the chat has focus (after a click to
select text, say) is handed to the prompt: typing is never a command.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

from gearterm.app.chat_entries import ReplyEntry, UserEntry
from gearterm.app.messages import TypedInChat
from gearterm.kernels.gear import Gear

KEEP_ENTRIES = 200  # older messages leave the screen (they stay in the history database)

Entry = UserEntry | ReplyEntry


class ChatLog(ScrollView, can_focus=True):
    ALLOW_SELECT = True

    def __init__(self, *, tinted: bool = False, id: str | None = None):
        super().__init__(id=id)
        self.tinted = tinted
        self.entries: list[Entry] = []
        self._entry_lines: list[list[Strip]] = []
        self._lines: list[Strip] = []
        self._width = 0
        self._drawn: dict[int, tuple[Strip, int, int, Strip]] = {}  # line -> (source, x, width, drawn)
        self._pass: tuple = (0, 0, 0, None, None)
        self.follow = True  # keep the newest line in view; off while the user has scrolled up
        self._resizing = False

    # ---- what the app calls ---------------------------------------------------------

    def add_user(self, text: str) -> UserEntry:
        return self._add(UserEntry(text))

    def add_reply(self, heading: str, text: str = "", pieces: Sequence[tuple[str, Gear]] = ()) -> ReplyEntry:
        return self._add(ReplyEntry.new(heading, text, pieces))

    def append(self, reply: ReplyEntry, pieces: Sequence[tuple[str, Gear]]) -> None:
        """Everything that arrived for `reply` since the last tick, as one write."""
        if pieces:
            reply.append(pieces)
            self._changed(reply)

    def note(self, reply: ReplyEntry, line: str) -> None:
        """A line under `reply` until its text comes (how far the prompt has been read)."""
        reply.meta = line
        self._changed(reply)

    def finish(self, reply: ReplyEntry, meta: str) -> None:
        reply.finish(meta)
        self._changed(reply)

    def resume(self, reply: ReplyEntry) -> None:
        """`reply` streams again: it is being continued."""
        reply.resume()
        self._changed(reply)

    def remove(self, entry: Entry) -> None:
        """Take a message off the screen (a regenerated reply, an edited message)."""
        if entry not in self.entries:
            return
        index = self.entries.index(entry)
        del self.entries[index], self._entry_lines[index]
        self._lines = [line for lines in self._entry_lines for line in lines]
        self._update_size(follow=True)

    def set_tint(self, tinted: bool) -> None:
        self.tinted = tinted
        self._render_all()

    def clear(self) -> None:
        self.entries, self._entry_lines, self._lines = [], [], []
        self._update_size(follow=True)

    @property
    def replies(self) -> list[ReplyEntry]:
        return [e for e in self.entries if isinstance(e, ReplyEntry)]

    def on_key(self, event: events.Key) -> None:
        if event.is_printable:
            event.stop()
            self.post_message(TypedInChat(event.character))

    # ---- rendering ------------------------------------------------------------------

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._render_all()

    def _add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        self._entry_lines.append(self._render(entry))
        self._lines += self._entry_lines[-1]
        if len(self.entries) > KEEP_ENTRIES:
            del self.entries[0], self._entry_lines[0]
            self._lines = [line for lines in self._entry_lines for line in lines]
        self._update_size(follow=True)
        return entry

    def _changed(self, entry: Entry) -> None:
        """Re-render one entry and splice its lines in (usually the last entry: a cheap tail splice)."""
        if entry not in self.entries:  # pruned or cleared while it streamed
            return
        index = self.entries.index(entry)
        start = sum(len(lines) for lines in self._entry_lines[:index])
        old = len(self._entry_lines[index])
        self._entry_lines[index] = self._render(entry)
        self._lines[start : start + old] = self._entry_lines[index]
        self._update_size()

    def _render_all(self) -> None:
        if self._width != self.scrollable_content_region.width and self in self.screen.selections:
            # The selection marks cells of lines wrapped at the old width: it would now cover
            # other words, or cells past the end of a line. Drop it; the user selects again.
            self.screen.selections = {w: s for w, s in self.screen.selections.items() if w is not self}
        self._width = self.scrollable_content_region.width
        self._entry_lines = [self._render(e) for e in self.entries]
        self._lines = [line for lines in self._entry_lines for line in lines]
        self._update_size()

    def _render(self, entry: Entry) -> list[Strip]:
        width = self._width or self.scrollable_content_region.width or 80
        if isinstance(entry, ReplyEntry):
            return entry.lines(width, self.tinted, self.app.console)
        return entry.lines(width, self.app.console)

    def _update_size(self, *, follow: bool | None = None) -> None:
        following = self.follow if follow is None else follow
        self._resizing = True  # a shorter document moves scroll_y up: that is not the user scrolling
        try:
            size = Size(self._width, len(self._lines))
            if size != self.virtual_size:
                # Setting virtual_size lays out the whole screen, on every streamed write; a longer
                # document only needs a longer scrollbar. _scroll_update sizes its thumb in this
                # frame, and lays out only when the scrollbar appears or goes.
                self.set_reactive(ChatLog.virtual_size, size)
                self._scroll_update(size)
            if following:
                self.scroll_end(animate=False, immediate=True, x_axis=False)
        finally:
            self._resizing = False
        self.follow = following
        self.refresh()
        if self._width and self.scrollable_content_region.width != self._width:
            self._render_all()  # the scrollbar came or went: wrap the text again at the width it left

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._resizing:
            return
        if new_value < old_value:
            self.follow = False  # the user scrolled up to read: stop pulling the view down
        elif new_value >= self.max_scroll_y:
            self.follow = True

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every line of this pass shares, looked up once: these are computed properties.
        scroll_x, scroll_y = self.scroll_offset
        self._pass = (scroll_x, scroll_y, self.scrollable_content_region.width, self.rich_style, self.text_selection)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y, width, style, selection = self._pass
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, style)
        line = self._lines[index]
        cached = self._drawn.get(index)
        if selection is None and cached and cached[0] is line and cached[1] == scroll_x and cached[2] == width:
            return cached[3]  # scrolling by a line re-asks for every visible line; most are unchanged
        source = line
        if selection is not None and (span := selection.get_span(index)) is not None:
            start, end = span
            end = line.cell_length if end == -1 else min(end, line.cell_length)
            start = min(start, end)
            before, selected, after = line.divide([start, end, line.cell_length])[:3]
            highlight = self.screen.get_component_rich_style("screen--selection")
            line = Strip.join([before, selected.apply_style(highlight), after])
        drawn = line.crop_extend(scroll_x, scroll_x + width, style).apply_style(style).apply_offsets(scroll_x, index)
        if selection is None:
            if len(self._drawn) > 4 * max(self.size.height, 1):
                self._drawn.clear()
            self._drawn[index] = (source, scroll_x, width, drawn)
        return drawn

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract("\n".join(line.text.rstrip() for line in self._lines)), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()
