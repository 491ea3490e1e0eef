"""A progress bar shown while a model loads in its worker thread: what loads, the bar and the
seconds so far on one row, the current step under them (it may take two rows at 80 columns)."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar


class LoadingBar(Vertical):
    started = 0.0  # time.monotonic() at the load's start

    def compose(self) -> ComposeResult:
        with Horizontal(id="loading-top"):
            yield Label(id="loading-what", markup=False)  # model names as they are, brackets too
            yield ProgressBar(total=100, show_eta=False, id="loading-progress")
            # A step can hold the bar still for a while (a GGUF's weights: 12-19 s for SmolLM2 on
            # two cores): the seconds go on, so the load is seen to be alive.
            yield Label(id="loading-seconds")
        yield Label(id="loading-step", markup=False)  # a load step, as the backend words it

    def on_mount(self) -> None:
        self.clock = self.set_interval(1.0, self.show_seconds, pause=True)

    def start(self, what: str) -> None:
        self.display = True
        self.query_one("#loading-what", Label).update(f"loading {what}")
        self.query_one("#loading-step", Label).update("")
        self.query_one(ProgressBar).update(progress=0)
        self.started = time.monotonic()
        self.show_seconds()
        self.clock.resume()

    def show_seconds(self) -> None:
        self.query_one("#loading-seconds", Label).update(f" {time.monotonic() - self.started:.0f} s")

    def step(self, fraction: float, text: str) -> None:
        self.query_one("#loading-step", Label).update(text)
        self.query_one(ProgressBar).update(progress=100 * min(max(fraction, 0.0), 1.0))

    def stop(self) -> None:
        self.display = False
        self.clock.pause()
