"""The help screen: every key, its binding id (for [keymap] in the config) and what it does, the
prompt's own keys, and what the colours and bars of the chat and panes mean.

One scrolling column of wrapped text, so that nothing is cut at 80x24: a table of fixed
columns (Textual's DataTable) cut the descriptions at the terminal's edge."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.kernels.gear import Gear

PROMPT_KEYS = (
    ("enter", "send the message"),
    ("ctrl+j", "a new line (shift+enter and alt+enter too, where the terminal sends them); a paste keeps its lines"),
    ("↑ / ↓", "on the first / last line: the messages sent before, in this session and earlier ones"),
    ("mouse", "drag over the chat to select text; ctrl+c copies it"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    def __init__(self, rows: Sequence[tuple[str, str, str]], config_note: str):
        super().__init__()
        self.rows = rows  # (keys, binding id, what it does)
        self.config_note = config_note

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("[b]Keys[/]  (esc closes; ↑ ↓ scroll)", classes="modal-title")
            with VerticalScroll(id="help-text"):
                yield Static(Group(self._keys(), Text(""), self._prompt_keys(), Text(""), self._legend()), id="help-body")
                yield Static(self.config_note, classes="modal-note", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-text").focus()

    def _keys(self) -> Table:
        table = _table("keys", "id", "what it does")
        for row in self.rows:  # Text, not str: a str cell is read as markup
            table.add_row(*map(Text, row))
        table.add_row(Text("ctrl+p"), Text("—"), Text("command palette: every action above by name"))
        return table

    def _prompt_keys(self) -> Table:
        table = _table("in the prompt", "", "")
        for keys, what in PROMPT_KEYS:
            table.add_row(Text(keys), Text(""), Text(what))
        return table

    def _legend(self) -> Table:
        table = _table("colours", "", "what they mean")
        gears = Text.assemble(*((f"█ {g.label}  ", GEAR_COLORS[g]) for g in Gear))
        rows = (
            (gears, "the gears: 4-bit, 8-bit and the weights as loaded (16-bit, or 32 on a CPU); the tint key "
             "colours each reply token by the gear that produced it"),
            (Text("██████····"), "gear mix: the share of tokens each gear produced, this reply and this session"),
            (Text("▁▃▅█ ┈┈"), "entropy bars, coloured by the gear the entropy asks for; ┈ rows: the low and high "
             "thresholds it shifts at"),
            (Text("survival"), "the share of tokens whose hidden state passed the activation entropy gate "
             "(histogram entropy ≤ 0.80, zlib ratio ≤ 0.90), per layer; the gate only watches, it never "
             "changes the output"),
        )
        for sample, what in rows:
            table.add_row(sample, Text(""), Text(what))
        return table


def _table(*headers: str) -> Table:
    table = Table(box=None, expand=True, padding=(0, 1), show_edge=False, title_justify="left")
    table.add_column(headers[0], no_wrap=True, style="bold")
    table.add_column(headers[1], no_wrap=True, style="dim")
    table.add_column(headers[2], ratio=1)
    return table
