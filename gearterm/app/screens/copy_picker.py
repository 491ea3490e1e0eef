"""The copy picker: the last reply first, then each code block of the replies and each message,
newest first; enter copies the one chosen to the clipboard."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PREVIEW = 70  # characters of a choice's first line shown


@dataclass(frozen=True)
class Copyable:
    what: str  # "reply", "your message", "code (python)"
    text: str


def copyables(messages: Sequence[tuple[str, str]]) -> list[Copyable]:
    """From (role, text) in chat order: the last reply, then code blocks and messages, newest first."""
    newest_first = [(role, text) for role, text in reversed(messages) if text]
    choices: list[Copyable] = []
    for role, text in newest_first:
        if role == "assistant":
            choices += [Copyable(f"code ({language or 'no language'})", code) for language, code in reversed(FENCE.findall(text))]
        choices.append(Copyable("reply" if role == "assistant" else "your message", text))
    last_reply = next((c for c in choices if c.what == "reply"), None)
    return ([last_reply] if last_reply else []) + [c for c in choices if c is not last_reply]


class CopyPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss", "Close", id="copy.close")]

    def __init__(self, choices: Sequence[Copyable]):
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="copy-box", classes="modal-box"):
            yield Static("[b]Copy[/]  (enter copies, esc closes)", classes="modal-title")
            options = OptionList(id="copy-options")
            for i, choice in enumerate(self.choices):
                first = choice.text.strip().splitlines()[0] if choice.text.strip() else ""
                lines = choice.text.count("\n") + 1
                preview = first if len(first) <= PREVIEW else first[: PREVIEW - 1] + "…"
                detail = f"{choice.what} · {lines} lines · {len(choice.text):,} characters"
                options.add_option(Option(Text.assemble(preview, "\n", (detail, "dim")), id=str(i)))
            yield options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected, "#copy-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id)].text)
