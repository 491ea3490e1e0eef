"""The status bar: which backend, model and device the next reply comes from, its context and
its memory. One line: where the terminal is too narrow for all of them, whole fields are left
out, the memory first and then the device (a server's URL), never a field cut part way ("context
74" of "context 74 of 4,096 used" would read as a context of 74 positions)."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.widgets import Static

from gearterm.app.widgets.one_line import fitted

# Fields, in the order shown; the later in LEFT_OUT_FIRST a field is, the longer it stays.
LEFT_OUT_FIRST = ("memory", "device", "context")


class StatusBar(Static):
    fields: dict[str, Text] | None = None  # name -> text, while a backend is shown

    def show_backend(
        self, backend: str, model: str, device: str, context: str, memory_bytes: int | None, high_dtype: str | None
    ) -> None:
        """`context`: the positions the model holds, or "n/a" and why. `high_dtype`: what the
        high gear reads, which sets most of the memory (float32 takes twice float16's)."""
        if memory_bytes is None:
            memory = "n/a — backend does not report it"
        else:
            memory = f"{_size(memory_bytes)} weights, all gears" + (f"; high gear {high_dtype}" if high_dtype else "")
        self.fields = {"backend": Text(backend, "bold"), "model": Text(model), "device": Text(device),
                       "context": Text(f"context {context}"), "memory": Text(f"memory {memory}")}  # fmt: skip
        self.update(fitted(self.fields, LEFT_OUT_FIRST, self.content_size.width))

    def show_no_model(self, why: str, picker_key: str) -> None:
        self.fields = None
        self.update(f"[b red]no model[/] — {escape(why)}  ({escape(picker_key)} picks a backend)")

    def on_resize(self) -> None:
        if self.fields is not None:
            self.update(fitted(self.fields, LEFT_OUT_FIRST, self.content_size.width))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
