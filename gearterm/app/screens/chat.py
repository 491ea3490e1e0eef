"""The main screen: the chat and prompt on the left, the live panes on the right, status below.

The panes need 44 columns; below NARROW_BELOW columns they would squeeze the chat to a strip
of its own, so they give way to a one-line strip of their headline figures under the chat.
The user can also hide them at any width (toggle_panes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from gearterm.app.messages import TypedInChat
from gearterm.app.readings import Readings
from gearterm.app.widgets.chat_log import ChatLog
from gearterm.app.widgets.entropy_pane import EntropyPane
from gearterm.app.widgets.gate_pane import GatePane
from gearterm.app.widgets.gear_pane import GearPane
from gearterm.app.widgets.loading_bar import LoadingBar
from gearterm.app.widgets.pane_strip import PaneStrip
from gearterm.app.widgets.power_pane import PowerPane
from gearterm.app.widgets.prompt import Prompt
from gearterm.app.widgets.speed_pane import SpeedPane
from gearterm.app.widgets.status_bar import StatusBar
from gearterm.app.widgets.welcome import Welcome
from gearterm.telemetry.power import PowerReading

NARROW_BELOW = 110  # columns: the chat keeps at least 64 beside the 44 of the panes


class ChatScreen(Screen):
    AUTO_FOCUS = "#prompt"

    def __init__(self, entropy_ceiling_bits: float, tinted: bool, sent: Sequence[str], key: Callable[[str], str]):
        """`sent`: the messages sent before, oldest first, for the prompt's up key; `key(binding_id)`:
        the key to name for a binding, as the user's keymap set it."""
        super().__init__()
        self.key = key
        self.entropy_ceiling_bits = entropy_ceiling_bits
        self.tinted = tinted
        self.sent = sent
        self.panes_hidden = False  # the user's choice; the width may hide them too
        self.readings: Readings | None = None  # the last shown, for panes that come back into view
        self.backend_name: str | None = None
        self.power = PowerReading(None, "not read yet")

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="chat-column"):
                with VerticalScroll(id="welcome-scroll"):
                    yield Welcome("loading the model…", id="welcome")
                yield ChatLog(tinted=self.tinted, id="chat")
                yield LoadingBar(id="loading")
                yield PaneStrip(id="strip")
                yield Prompt(self.sent, help_key=self.key("help"), id="prompt")
            with VerticalScroll(id="panes"):
                yield EntropyPane(self.entropy_ceiling_bits, id="entropy", classes="pane")
                yield GearPane(self.key("cycle_gear"), id="gear", classes="pane")
                yield GatePane(id="gate", classes="pane")
                yield PowerPane(id="power", classes="pane")
                yield SpeedPane(id="speed", classes="pane")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.show_welcome(True)

    def show_welcome(self, empty: bool) -> None:
        """The welcome view in place of the chat while it has no messages."""
        self.set_class(empty, "-empty")

    @property
    def welcome(self) -> Welcome:
        return self.query_one(Welcome)

    @on(TypedInChat)
    def _typed_in_chat(self, event: TypedInChat) -> None:
        self.prompt.focus()
        self.prompt.type_in(event.text)

    @property
    def chat(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def prompt(self) -> Prompt:
        return self.query_one(Prompt)

    @property
    def loading(self) -> LoadingBar:
        return self.query_one(LoadingBar)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def on_resize(self, event) -> None:
        self._place_panes()

    def toggle_panes(self) -> None:
        self.panes_hidden = not self.panes_hidden
        self._place_panes()

    @property
    def panes_shown(self) -> bool:
        return not self.has_class("-panes-off")

    def _place_panes(self) -> None:
        off = self.panes_hidden or self.size.width < NARROW_BELOW
        if off == self.has_class("-panes-off"):
            return
        self.set_class(off, "-panes-off")
        if self.readings is not None:  # what changed while they were out of view
            self.show_readings(self.readings, self.backend_name)
        self.show_power(self.power)

    def show_readings(self, readings: Readings, backend_name: str | None) -> None:
        self.readings, self.backend_name = readings, backend_name
        if not self.panes_shown:  # a hidden pane still measures its text for a layout: skip them
            self.query_one(PaneStrip).show_readings(readings)
            return
        self.query_one(EntropyPane).show(readings)
        self.query_one(GearPane).show(readings)
        self.query_one(GatePane).show_readings(readings, backend_name)
        self.query_one(SpeedPane).show_readings(readings)

    def show_gear(self, readings: Readings) -> None:
        if self.panes_shown:
            self.query_one(GearPane).show(readings)
        else:
            self.query_one(PaneStrip).show_readings(readings)

    def show_power(self, view: PowerReading) -> None:
        self.power = view
        if self.panes_shown:
            self.query_one(PowerPane).show(view)
        else:
            self.query_one(PaneStrip).show_power(view)
