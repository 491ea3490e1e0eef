"""The conversation list: saved chats, newest first. Typing searches their titles and messages
(SQLite FTS5, every word as a prefix); ↑ ↓ choose, enter opens, f2 renames, f8 twice deletes.

Reads go through `search`; renames and deletes through the app, which writes them with the
history writer and knows whether the chat on screen is the one deleted."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from gearterm.history import ConversationSummary

HINT = "type to search · ↑ ↓ choose · enter opens · f2 renames · f8 deletes · esc closes"


class ConversationList(ModalScreen[int | None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="conversations.close"),
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("f2", "rename", "Rename", id="conversations.rename"),
        Binding("f8", "delete", "Delete", id="conversations.delete"),
    ]

    def __init__(
        self,
        search: Callable[[str], Sequence[ConversationSummary]],
        where: str,
        rename: Callable[[int, str], None],
        delete: Callable[[int], None],
    ):
        """`search(words)`: the conversations that hold every word, newest first ("" = all);
        `where`: the database file, or why there is none."""
        super().__init__()
        self.search, self.where, self.rename, self.delete = search, where, rename, delete
        self.conversations: Sequence[ConversationSummary] = search("")
        self.deleting: int | None = None  # the conversation f8 was pressed on once

    def compose(self) -> ComposeResult:
        with Vertical(id="conversations-box", classes="modal-box"):
            yield Static("[b]Conversations[/]", classes="modal-title")
            yield Input(placeholder="search titles and messages", id="conversation-search")
            yield OptionList(id="conversation-options")
            yield Input(id="conversation-title")
            yield Static(HINT, id="conversation-hint", classes="modal-note", markup=False)
            yield Static("", id="conversation-where", classes="modal-note", markup=False)

    def on_mount(self) -> None:
        self.query_one("#conversation-title").display = False
        self._show(self.conversations)
        self.query_one("#conversation-search").focus()

    def _show(self, conversations: Sequence[ConversationSummary], keep: int | None = None) -> None:
        """List `conversations`, highlighting the one with id `keep` where it is there, else the first."""
        self.conversations = conversations
        options = self.query_one(OptionList)
        options.clear_options()
        for c in conversations:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
            options.add_option(Option(Text.assemble(c.title, "\n", (f"{when} · {c.messages} messages", "dim")), id=str(c.id)))
        ids = [c.id for c in conversations]
        options.highlighted = ids.index(keep) if keep in ids else 0 if conversations else None
        words = self.query_one("#conversation-search", Input).value.strip()
        if conversations:
            found = f"{len(conversations)} found · " if words else ""
        else:
            found = f"nothing holds {words!r} · " if words else "no saved conversations yet · "
        self.query_one("#conversation-where", Static).update(found + self.where)

    @property
    def chosen(self) -> ConversationSummary | None:
        index = self.query_one(OptionList).highlighted
        return self.conversations[index] if index is not None and self.conversations else None

    @on(Input.Changed, "#conversation-search")
    def _search(self, event: Input.Changed) -> None:
        self.deleting = None
        self._show(self.search(event.value))

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.conversations:
            options.highlighted = min(max((options.highlighted or 0) + step, 0), len(self.conversations) - 1)
        self.deleting = None
        self.query_one("#conversation-hint", Static).update(HINT)

    @on(Input.Submitted, "#conversation-search")
    @on(OptionList.OptionSelected, "#conversation-options")
    def _open(self) -> None:
        if self.chosen is not None:
            self.dismiss(self.chosen.id)

    def action_rename(self) -> None:
        if self.chosen is None:
            return
        title = self.query_one("#conversation-title", Input)
        title.value, title.display = self.chosen.title, True
        title.focus()
        self.query_one("#conversation-hint", Static).update(f"new title for {self.chosen.title!r} · enter saves · esc leaves it")

    @on(Input.Submitted, "#conversation-title")
    def _renamed(self, event: Input.Submitted) -> None:
        chosen = self.chosen
        if event.value.strip() and chosen is not None:
            self.rename(chosen.id, event.value)
        self._end_rename()
        self._show(self.search(self.query_one("#conversation-search", Input).value), keep=chosen and chosen.id)

    def _end_rename(self) -> None:
        self.query_one("#conversation-title").display = False
        self.query_one("#conversation-search").focus()
        self.query_one("#conversation-hint", Static).update(HINT)

    def action_delete(self) -> None:
        chosen = self.chosen
        if chosen is None:
            return
        hint = self.query_one("#conversation-hint", Static)
        if self.deleting != chosen.id:  # the first press only asks
            self.deleting = chosen.id
            hint.update(f"f8 again deletes {chosen.title!r} and its {chosen.messages} messages for good")
            return
        self.deleting = None
        self.delete(chosen.id)
        hint.update(f"deleted {chosen.title!r}")
        self._show(self.search(self.query_one("#conversation-search", Input).value))

    def action_close(self) -> None:
        if self.query_one("#conversation-title").display:  # esc leaves a rename first
            self._end_rename()
            return
        self.dismiss(None)
