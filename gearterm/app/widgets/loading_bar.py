"""A progress bar shown while a model loads in its worker thread."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar


class LoadingBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Label(id="loading-label", markup=False)  # model paths and load steps, as they are
        yield ProgressBar(total=100, show_eta=False, id="loading-progress")

    def start(self, what: str) -> None:
        self.display = True
        self.query_one(Label).update(f"loading {what}")
        self.query_one(ProgressBar).update(progress=0)

    def step(self, fraction: float, text: str) -> None:
        self.query_one(Label).update(text)
        self.query_one(ProgressBar).update(progress=100 * min(max(fraction, 0.0), 1.0))

    def stop(self) -> None:
        self.display = False
