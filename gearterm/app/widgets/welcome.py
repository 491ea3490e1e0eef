"""The welcome view, shown in place of an empty chat: which model answers, the five keys that
matter, and what each pane shows. On the packaged pocket model it also says what that model can
and cannot do, so that its replies do not read as the app being broken."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

PANES = (
    ("Entropy", "how unsure the model is of each next token, in bits; ┈ rows: where the gear shifts"),
    ("Gear", "the precision the latest token's weights were read at (4 or 8 bits, or as loaded), and each gear's share"),
    ("Gate", "how often each layer's hidden state passed an entropy gate; it only watches, never changes a reply"),
    ("Power", "GPU watts and joules per token, where a meter can be read"),
    ("Speed", "tokens per second, time per step, time to the first token"),
)


class Welcome(Static):
    def show_model(self, model: str, backend: str, device: str, pocket_context: int | None, key: Callable[[str], str]) -> None:
        """`pocket_context`: the context in tokens when the model is the packaged pocket model, else None."""
        parts = [
            Text.from_markup(f"[b]gearterm[/] · replies come from [b]{escape(model)}[/] on {escape(backend)} ({escape(device)})\n"),
            Text.from_markup(
                f"[b]enter[/] send · [b]ctrl+j[/] new line · [b]{key('cancel')}[/] stop a reply · "
                f"[b]{key('cycle_gear')}[/] gear mode · [b]{key('help')}[/] every key ([b]ctrl+p[/] every command)\n"
            ),
        ]
        if pocket_context is not None:
            parts.append(
                Text.from_markup(
                    "[b]About this model.[/] It is gearterm's pocket model: 7.6 million parameters trained on "
                    "public-domain books, shipped so that the app works offline. It answers each turn as a speaker in "
                    "an old play or novel might; it knows no facts and follows no instructions. Its context is "
                    f"{pocket_context:,} tokens. For a real chat, {key('switch_backend')} picks another model "
                    "(or start with --model).\n"
                )
            )
        parts.append(
            Text(
                "Each reply token is made with the model's weights read at 4 bits (low gear), 8 bits (mid) or as "
                "loaded (high); the entropy of the model's next-token guess picks the gear for the next token. "
                "The panes (beside the chat, or one line under it in a narrow terminal):"
            )
        )
        panes = Table.grid(padding=(0, 1))
        panes.add_column(style="bold", no_wrap=True)
        panes.add_column(ratio=1)
        for name, what in PANES:
            panes.add_row(name, what)
        parts.append(panes)
        self.update(Group(*parts))
