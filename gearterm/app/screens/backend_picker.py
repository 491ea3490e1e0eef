"""The backend picker: configured and discovered backends; choosing one loads it, the chat stays."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from gearterm.app.backend_choices import model_title
from gearterm.app.messages import ChoicesFound
from gearterm.config import BackendEntry


class BackendPicker(ModalScreen[BackendEntry | None]):
    BINDINGS = [Binding("escape", "dismiss", "Close", id="picker.close")]

    def __init__(self, current: BackendEntry | None, discover: Callable[[], tuple[list[BackendEntry], list[str]]]):
        super().__init__()
        self.current = current
        self.discover = discover
        self.entries: list[BackendEntry] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box", classes="modal-box"):
            yield Static("[b]Switch backend[/]  (enter loads it, esc closes; the chat stays)", classes="modal-title")
            yield OptionList(id="picker-options")
            yield Static("looking for backends…", id="picker-notes", classes="modal-note")

    def on_mount(self) -> None:
        self._discover()

    @work(thread=True, exclusive=True, group="discover", exit_on_error=False)
    def _discover(self) -> None:
        entries, notes = self.discover()
        self.post_message(ChoicesFound(entries, notes))

    @on(ChoicesFound)
    def _show(self, event: ChoicesFound) -> None:
        self.entries = event.entries
        options = self.query_one(OptionList)
        options.clear_options()
        for i, entry in enumerate(self.entries):
            mark = " (in use)" if entry == self.current else ""
            options.add_option(Option(Text.assemble(entry.label, mark, *_detail(entry)), id=str(i)))
        options.highlighted = 0 if self.entries else None
        options.focus()
        self.query_one("#picker-notes", Static).update(Text("\n".join(event.notes) or f"{len(self.entries)} found"))

    @on(OptionList.OptionSelected, "#picker-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.entries[int(event.option.id)])

    @on(Worker.StateChanged)
    def _discovery_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.query_one("#picker-notes", Static).update(Text(f"could not look for backends: {event.worker.error}"))


def _detail(entry: BackendEntry) -> tuple:
    """A dim second line with what the label does not say: the backend and model of a label the
    config named, and a server's URL. A label of the usual "backend: model" says both."""
    title = model_title(entry.backend, entry.model)
    parts = [] if entry.label == f"{entry.backend}: {title}" else [f"{entry.backend} · {title}"]
    parts += [entry.url] if entry.url else []
    return ("\n", (" · ".join(parts), "dim")) if parts else ()
