"""The help screen: every key, its binding id (for [keymap] in the config) and what it does."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    def __init__(self, rows: Sequence[tuple[str, str, str]], config_note: str):
        super().__init__()
        self.rows = rows  # (keys, binding id, what it does)
        self.config_note = config_note

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("[b]Keys[/]  (esc closes)", classes="modal-title")
            table = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("keys", "id", "what it does")
            for row in self.rows:  # Text, not str: a str cell is read as markup
                table.add_row(*map(Text, row))
            table.add_row("ctrl+p", "—", "command palette: every action above by name")
            yield table
            yield Static(self.config_note, classes="modal-note", markup=False)
