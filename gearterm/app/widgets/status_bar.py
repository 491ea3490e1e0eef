"""The status bar: which backend, model and device the next reply comes from, its context and
its memory."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static


class StatusBar(Static):
    def show_backend(
        self, backend: str, model: str, device: str, context: str, memory_bytes: int | None, high_dtype: str | None
    ) -> None:
        """`context`: the positions the model holds, or "n/a" and why. `high_dtype`: what the
        high gear reads, which sets most of the memory (float32 takes twice float16's)."""
        if memory_bytes is None:
            memory = "n/a — backend does not report it"
        else:
            memory = f"{_size(memory_bytes)} weights, all gears" + (f"; high gear {escape(high_dtype)}" if high_dtype else "")
        self.update(f"[b]{escape(backend)}[/] · {escape(model)} · {escape(device)} · context {escape(context)} · memory {memory}")

    def show_no_model(self, why: str, picker_key: str) -> None:
        self.update(f"[b red]no model[/] — {escape(why)}  ({escape(picker_key)} picks a backend)")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
