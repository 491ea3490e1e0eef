"""The conversation list: saved chats, newest first; choosing one opens it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from gearterm.history import ConversationSummary


class ConversationList(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "dismiss", "Close", id="conversations.close")]

    def __init__(self, conversations: Sequence[ConversationSummary], where: str):
        super().__init__()
        self.conversations = conversations
        self.where = where  # the database file, or why there is none

    def compose(self) -> ComposeResult:
        with Vertical(id="conversations-box", classes="modal-box"):
            yield Static("[b]Conversations[/]  (enter opens, esc closes)", classes="modal-title")
            options = OptionList(id="conversation-options")
            for c in self.conversations:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
                options.add_option(Option(Text.assemble(c.title, "\n", (f"{when} · {c.messages} messages", "dim")), id=str(c.id)))
            yield options
            yield Static(
                self.where if self.conversations else f"no saved conversations yet · {self.where}",
                classes="modal-note",
                markup=False,
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0 if self.conversations else None
        options.focus()

    @on(OptionList.OptionSelected, "#conversation-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))
