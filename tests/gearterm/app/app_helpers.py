"""Shared by the app's Pilot tests: an app on a scripted or real backend, and waiting on it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gearterm.backends.base import Backend, BackendError
from gearterm.app.app import GeartermApp
from gearterm.app.backend_choices import create_from_entry
from gearterm.bench.scripted_backend import ScriptedBackend
from gearterm.config import BackendEntry, Config, GenerationConfig, UIConfig
from gearterm.history import History

SCRIPTED = BackendEntry(label="scripted stand-in", backend="scripted")


def backends(hold_after: int | None = None, rate: float = 2000.0):
    """A backend factory: the scripted stand-in for SCRIPTED, the real registry for anything else."""

    def create(entry: BackendEntry, config: Config) -> Backend:
        if entry.backend == "scripted":
            return ScriptedBackend(rate, hold_after=hold_after)
        return create_from_entry(entry, config)

    return create


class HeldLoad(ScriptedBackend):
    """The scripted stand-in, its load held at one step until the test sets `release`; then
    it finishes, or fails where `fail`."""

    def __init__(self, release: threading.Event, step: str = "pretending to read weights", fail: bool = False):
        super().__init__(2000)
        self.release, self.step, self.fail = release, step, fail

    def load(self, progress=None):
        progress(0.45, self.step)
        self.release.wait(30)
        if self.fail:
            raise BackendError("the weights are not there")
        progress(1.0, "ready")


def make_app(
    tmp_path: Path,
    *,
    entry: BackendEntry = SCRIPTED,
    config: Config | None = None,
    hold_after: int | None = None,
    max_tokens: int = 24,
    history: History | None = None,
    **kwargs,
) -> GeartermApp:
    config = config or Config(
        generation=GenerationConfig(max_tokens=max_tokens), ui=UIConfig(export_dir=str(tmp_path / "exports"))
    )
    kwargs.setdefault("create_backend", backends(hold_after))
    kwargs.setdefault("discover", lambda config: ([SCRIPTED], []))
    return GeartermApp(config, entry, history or History(tmp_path / "history.sqlite3"), **kwargs)


async def wait_for(pilot, condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


async def loaded(pilot, app) -> None:
    await wait_for(pilot, lambda: app.backend is not None and app.loading_entry is None, "the backend to load")


async def say(pilot, app, text: str) -> None:
    """Type a message, send it and wait until the reply has ended, is saved and the panes show it
    (they redraw at most PANE_HZ times a second, so they can lag the reply's end by a tick)."""
    app.chat_screen.prompt.focus()
    await pilot.press(*text, "enter")
    await wait_for(pilot, lambda: {"role": "user", "content": text} in app.transcript, "the message to be sent")
    await wait_for(pilot, lambda: app.reply is None, f"the reply to {text!r}")
    await wait_for(pilot, lambda: not app.panes_stale, "the panes")
