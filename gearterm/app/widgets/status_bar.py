"""The status bar: which backend, model and device the next reply comes from, and its memory."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static


class StatusBar(Static):
    def show_backend(self, backend: str, model: str, device: str, memory_bytes: int | None) -> None:
        memory = "n/a — backend does not report it" if memory_bytes is None else f"{_size(memory_bytes)} weights, all gears"
        self.update(f"[b]{escape(backend)}[/] · {escape(model)} · {escape(device)} · memory {memory}")

    def show_no_model(self, why: str, picker_key: str) -> None:
        self.update(f"[b red]no model[/] — {escape(why)}  ({escape(picker_key)} picks a backend)")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
