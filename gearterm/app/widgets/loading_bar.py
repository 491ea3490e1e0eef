"""A progress bar shown while a model loads in its worker thread: what loads and the bar on
one row, the current step under them (it may take two rows at 80 columns)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar


class LoadingBar(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(id="loading-top"):
            yield Label(id="loading-what", markup=False)  # model names as they are, brackets too
            yield ProgressBar(total=100, show_eta=False, id="loading-progress")
        yield Label(id="loading-step", markup=False)  # a load step, as the backend words it

    def start(self, what: str) -> None:
        self.display = True
        self.query_one("#loading-what", Label).update(f"loading {what}")
        self.query_one("#loading-step", Label).update("")
        self.query_one(ProgressBar).update(progress=0)

    def step(self, fraction: float, text: str) -> None:
        self.query_one("#loading-step", Label).update(text)
        self.query_one(ProgressBar).update(progress=100 * min(max(fraction, 0.0), 1.0))

    def stop(self) -> None:
        self.display = False
