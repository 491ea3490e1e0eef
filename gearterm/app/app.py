"""The gearterm app: a chat beside live entropy, gear, gate, power and speed panes.

The app is the controller: it owns the backend, the history store and the event queue.
Model loading and generation run in workers off the UI loop (a thread for local backends,
an async task for servers). Generation puts each event, stamped with the time it arrived,
on a queue.Queue; a 20 Hz timer drains the queue and applies everything that arrived in one
batch: one write to the chat, one database transaction, a refresh of the panes. Generation
never waits for the UI, and the UI never waits for generation.
"""

from __future__ import annotations

import dataclasses
import gc
import queue
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textual import events, on, work
from textual.app import App, InvalidThemeError, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.reactive import var
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from gearterm.backends.base import (
    Backend,
    BackendError,
    GenerationParams,
    LocalBackend,
    Notice,
    PromptRead,
    ReplyDone,
    TokenEvent,
    continues_reply,
)
from gearterm.backends.draft_choice import parse_draft_gear
from gearterm.backends.gearbox import GearMode
from gearterm.app.backend_choices import create_from_entry, discover_choices, loading_title
from gearterm.app.chat_entries import ReplyEntry, UserEntry
from gearterm.app.high_gear import high_gear_bits, high_gear_dtype
from gearterm.app.keys import KEYS, first_key, resolve_keymap
from gearterm.app.messages import BackendReady, LoadProgress
from gearterm.app.readings import Readings
from gearterm.app.screens.backend_picker import BackendPicker
from gearterm.app.screens.chat import ChatScreen
from gearterm.app.screens.conversations import ConversationList
from gearterm.app.screens.copy_picker import CopyPicker, copyables
from gearterm.app.screens.help import HelpScreen
from gearterm.app.screens.settings import SettingsScreen
from gearterm.app import strip_cycles
from gearterm.app.repetition import repeating_piece
from gearterm.app.widgets.prompt import Prompt, prompt_limit
from gearterm.config import BackendEntry, Config, GenerationConfig, export_dir, setting_problem
from gearterm.export import export_conversation
from gearterm.models import POCKET_MODEL_DIR
from gearterm.history import History, HistoryWriter, Row, StoredMessage, TokenRow
from gearterm.reply_line import ReplyFacts, gear_modes, stored_facts
from gearterm.telemetry.power import PowerMeter, PowerReading
from gearterm.kernels.gear import Gear

DRAIN_HZ = 20  # queue drains (and so chat writes) per second
PANE_HZ = 10  # pane redraws per second at most: each costs a few ms of rendering, and keys come first
POWER_HZ = 2  # power pane refreshes per second
RECALLED_MESSAGES = 500  # earlier messages the prompt's up key walks through, across sessions
GC_THRESHOLD = 7000  # Python's default is 700: see _freeze_startup_objects
QUIT_REASON = "cancelled (app quit)"  # the end reason of a reply the user quit the app during


@dataclass
class Reply:
    """The reply being streamed: where its events go."""

    message: Row  # in the history
    entry: ReplyEntry  # where its text is drawn
    backend: Backend
    gear_mode: GearMode
    started_at: float  # the app's clock when it was asked for
    text: str = ""
    tokens: int = 0
    gears: Counter[str] = field(default_factory=Counter)  # gear name -> tokens, for the line under it
    live: bool = True  # False once the user left its conversation: it still finishes into the store
    earlier: ReplyFacts | None = None  # a reply being continued: what it was before this part...
    first_row: int = 0  # ... and where this part's token rows start


@dataclass
class Exchange:
    """The chat's last message and its reply: what regenerate and edit replace."""

    text: str
    message: Row  # in the history
    entry: UserEntry  # on screen
    reply: Row | None = None
    reply_entry: ReplyEntry | None = None
    reply_facts: ReplyFacts | None = None  # the line under the reply, once it has ended
    reply_rows: int = 0  # token rows stored for the reply: where a continuation's rows start


class GeartermApp(App[None]):
    CSS_PATH = "gearterm.tcss"
    TITLE = "gearterm"
    BINDINGS = [Binding(k.keys, k.action, k.title, id=k.id, tooltip=k.help, priority=k.id == "quit") for k in KEYS]

    # var, not reactive: a reactive on the App repaints the whole screen when it changes; the
    # watchers below redraw only what shows the value (the gear pane, the chat).
    gear_mode: var[GearMode] = var(GearMode.AUTO, init=False)
    gear_tint: var[bool] = var(False, init=False)

    def __init__(
        self,
        config: Config,
        entry: BackendEntry,
        history: History,
        *,
        notes: Sequence[tuple[str, str]] = (),
        create_backend: Callable[[BackendEntry, Config], Backend] = create_from_entry,
        discover: Callable[[Config], tuple[list[BackendEntry], list[str]]] = discover_choices,
        power: PowerMeter | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        """`notes` are (severity, text) shown once the screen is up: config problems and the like.
        `power`, a started meter, feeds the power pane (None: metering is off); `clock` stamps
        events (tests pass a fake one)."""
        super().__init__()
        strip_cycles.install()
        self.config = config
        self.history = history  # read here; written through history_writer
        self.history_writer = HistoryWriter(history, lambda text, severity: self.notify(text, severity=severity, timeout=15))
        self.notes = list(notes)
        self.create_backend = create_backend
        self.discover = discover
        self.power = power
        self.clock = clock
        self.startup_entry = entry
        self.keymap, clashes = resolve_keymap(config.keymap)
        self.notes += [("warning", clash) for clash in clashes]

        self.backend: Backend | None = None
        self.high_gear_dtype: str | None = None  # what the backend's high gear reads, where it says
        self.entry: BackendEntry | None = None
        self.loading_entry: BackendEntry | None = None
        self.load_error: str | None = None
        self.waiting_text: str | None = None  # sent as soon as the model being loaded is ready
        self.retired: list[Backend] = []  # replaced while streaming; unloaded when the reply ends
        self.events: queue.Queue[tuple[float, object]] = queue.Queue()
        self.reply: Reply | None = None
        self.conversation: Row | None = None
        self.transcript: list[dict] = []  # what the next reply is conditioned on (after the system prompt)
        self.context_used: int | None = None  # positions the chat filled at its last reply, where counted
        self.said_loop = False  # a looping greedy reply is explained once a session
        self.last: Exchange | None = None
        self.editing: Exchange | None = None  # the message being edited in the prompt
        self.settings: GenerationConfig = config.generation  # this chat's; a new chat starts from the config's
        self.readings = Readings()
        self.panes_stale, self.panes_at = False, 0.0
        self.key_at = 0.0  # when the user last pressed a key
        self.gave_way: set[str] = set()  # timers that skipped their last tick for a key (see _key_first)
        self.set_reactive(GeartermApp.gear_mode, GearMode(config.gear))
        self.set_reactive(GeartermApp.gear_tint, config.ui.gear_tint)
        self.readings.gear_mode = self.gear_mode

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """A notice: not markup unless asked, for notices carry config keys ("[keymap]"), paths,
        model names and server errors, whose square brackets markup would swallow."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    async def on_event(self, event: events.Event) -> None:
        """Note when the user presses a key (see _key_first), then dispatch as usual."""
        if isinstance(event, events.Key):
            self.key_at = time.monotonic()
        await super().on_event(event)

    def get_default_screen(self) -> Screen:
        try:
            sent = self.history.sent_messages(RECALLED_MESSAGES)
        except sqlite3.Error:  # an unreadable store is reported where it is written; up recalls nothing
            sent = []
        self.chat_screen = ChatScreen(self.config.ui.entropy_ceiling_bits, self.gear_tint, sent, self.key)
        return self.chat_screen

    def on_ready(self) -> None:
        """The chat screen is laid out: show the notes, start the timers and the first load."""
        self.set_keymap({binding_id: keys for binding_id, keys in self.keymap.items() if keys})
        try:
            self.theme = self.config.ui.theme
        except InvalidThemeError:  # the theme list is long, so say where to look
            self.notes.append(("warning", f"unknown theme {self.config.ui.theme!r} in [ui]; ctrl+p → Theme lists them"))
        for severity, text in self.notes:
            self.notify(text, severity=severity, timeout=15)
        _freeze_startup_objects()
        self.set_interval(1 / DRAIN_HZ, self._drain)
        # The panes redraw half a drain period after the chat, in a frame of their own: one frame
        # for both spans the whole screen and costs more than the two apart.
        panes = self.set_interval(1 / DRAIN_HZ, self._redraw_panes, pause=True)
        self.set_timer(0.5 / DRAIN_HZ, panes.resume)
        if self.power is not None:
            self.set_interval(1 / POWER_HZ, self._show_power)
        self._show_power()
        self._refresh_panes()
        self.load_backend(self.startup_entry)

    def on_unmount(self) -> None:
        if self.reply is not None:
            self.reply.backend.cancel()
            self._save_at_quit(self.reply)
        self.history_writer.flush()  # a last try, if writing is paused
        self.history.close()

    def _save_at_quit(self, reply: Reply) -> None:
        """Store the streaming reply with what arrived and was not drawn yet, ended by the quit:
        a reply that has no end reason in the store is one a crash cut off."""
        tokens, reason = [], QUIT_REASON
        while not self.events.empty():
            _, event = self.events.get_nowait()
            if isinstance(event, TokenEvent):
                tokens.append(event)
            elif isinstance(event, ReplyDone) and event.reason != "cancelled":  # it ended on its own first
                reason = event.reason
                break
        rows = [_token_row(reply.first_row + reply.tokens + i, event) for i, event in enumerate(tokens)]
        text = reply.text + "".join(event.text for event in tokens)
        self.history_writer.save_reply(reply.message, text, rows, end_reason=reason)

    # ---- backends ---------------------------------------------------------------------

    def load_backend(self, entry: BackendEntry) -> None:
        """Load `entry` in a thread; the current backend keeps serving until the new one is ready."""
        self.loading_entry = entry
        self.chat_screen.loading.start(loading_title(entry))
        self._load(entry)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, entry: BackendEntry) -> None:
        backend = self.create_backend(entry, self.config)
        backend.load(lambda fraction, text: self.post_message(LoadProgress(entry, fraction, text)))
        self.post_message(BackendReady(entry, backend))

    @on(LoadProgress)
    def _load_progress(self, event: LoadProgress) -> None:
        if event.entry == self.loading_entry and self._ui_alive():
            self.chat_screen.loading.step(event.fraction, event.text)

    @on(BackendReady)
    def _backend_ready(self, event: BackendReady) -> None:
        if event.entry != self.loading_entry or not self._ui_alive():  # replaced, or the app is closing
            event.backend.unload()
            return
        old, self.backend, self.entry = self.backend, event.backend, event.entry
        self.loading_entry, self.load_error = None, None
        if old is not None:
            if self.reply is not None and self.reply.backend is old:
                self.retired.append(old)
            else:
                old.unload()
        self.high_gear_dtype = high_gear_dtype(event.backend)
        if old is not None and self.readings.gear is not None:  # the gear shown is the last backend's
            self.readings.gear_of_another_model = True
        self.context_used = None  # another tokenizer counts the chat afresh, at its next reply
        context = getattr(event.backend, "max_positions", None)
        self.chat_screen.prompt.max_chars, self.chat_screen.prompt.max_chars_why = prompt_limit(context)
        self._use_settings(self.settings)  # and the status bar
        self.chat_screen.loading.stop()
        self._show_welcome()
        self._refresh_panes()
        _freeze_startup_objects()
        if old is not None:
            self.notify(f"next replies come from {event.entry.label}", title="backend switched")
        self._send_waiting()

    def _load_failed(self, error: str) -> None:
        entry, self.loading_entry = self.loading_entry, None
        self._drop_waiting()  # it stays in the prompt, for the next backend
        self.chat_screen.loading.stop()
        if self.backend is None:
            self.load_error = f"could not load {entry.label if entry else 'the model'}: {error}"
            self._show_status()
            self.notify(f"{error}\n{self.key('switch_backend')} picks another backend.", title="model failed to load", severity="error", timeout=20)
        else:
            self.notify(f"{error}\nstill using {self.entry.label}.", title="model failed to load", severity="error", timeout=20)

    def _show_welcome(self) -> None:
        backend = self.backend
        pocket = Path(backend.model_name).resolve() == POCKET_MODEL_DIR
        context = getattr(backend, "max_positions", None) if pocket else None
        self.chat_screen.welcome.show_model(
            _model_label(backend.model_name), self.entry.backend, backend.capabilities.device, context, self.key
        )

    def _show_status(self) -> None:
        status = self.chat_screen.status
        if self.backend is None:
            status.show_no_model(self.load_error or "loading…", self.key("switch_backend"))
            return
        caps = self.backend.capabilities
        status.show_backend(
            self.entry.backend, _model_label(self.backend.model_name), caps.device,
            _context_label(self.backend, self.settings.context, self.context_used),
            self.backend.memory_bytes(), self.high_gear_dtype,
        )  # fmt: skip

    # ---- replies ----------------------------------------------------------------------

    def _use_settings(self, settings: GenerationConfig) -> None:
        """This chat's settings: the gear thresholds go to the backend's policy (local backends
        have one; GenerationParams has no field for them) and set the thresholds the panes show."""
        self.settings = settings
        backend = self.backend
        if backend is None:
            return
        policy = getattr(backend, "policy", None)
        if policy is not None:
            # A reply in flight keeps the policy it started with: its gearbox holds the old one.
            policy = backend.policy = dataclasses.replace(
                policy, low_below_bits=settings.low_below_bits, high_above_bits=settings.high_above_bits
            )
        self.readings.set_capabilities(backend.capabilities, policy, high_gear_bits(self.high_gear_dtype))
        self.panes_stale = True
        self._show_status()  # the chat's context, and what it filled

    @on(Prompt.Submitted, "#prompt")
    def _submit(self, event: Prompt.Submitted) -> None:
        text = event.text.strip("\n").rstrip()  # blank lines around it, not the indent of its first line
        if not text.strip():
            return
        if self.reply is not None:
            self.notify(f"a reply is still streaming: {self.key('cancel')} stops it", severity="warning")
            return
        if self.backend is None and self.loading_entry is not None:
            # The message waits in the prompt, still editable, and goes once the model is ready.
            self.waiting_text = text
            event.prompt.border_title = f"sends when the model has loaded · {self.key('cancel')} keeps it unsent"
            return
        if self.backend is None:
            why = self.load_error or "no model is loaded"
            self.notify(f"{why}. {self.key('switch_backend')} picks a backend.", title="no model to reply", severity="warning")
            return
        self._send(text)

    def _send(self, text: str) -> None:
        prompt = self.chat_screen.prompt
        prompt.clear()
        prompt.remember(text)
        if self.editing is not None:
            self._forget_last_message()
        self.start_reply(text)

    def _drop_waiting(self) -> str | None:
        """Forget the message waiting for the model; the prompt keeps its text. Returns it."""
        text, self.waiting_text = self.waiting_text, None
        if text is not None:
            self.chat_screen.prompt.border_title = None
        return text

    def _send_waiting(self) -> None:
        """Send the message that waited for the model, if the prompt still holds it as it was
        (one edited since is the user's to send)."""
        text = self._drop_waiting()
        if text is not None and self.chat_screen.prompt.text.strip("\n").rstrip() == text:
            self._send(text)

    def key(self, binding_id: str) -> str:
        """The key to name for `binding_id` wherever the UI says which key does something."""
        return first_key(self.keymap[binding_id])

    @property
    def conversation_id(self) -> int | None:
        """The open conversation's id in the history; None before it is stored."""
        return self.conversation.id if self.conversation else None

    def start_reply(self, text: str) -> None:
        """Send `text` as the chat's next message and ask for its reply."""
        writer = self.history_writer
        if self.conversation is None:
            self.conversation = writer.new_conversation(text)
            if self.settings != self.config.generation:  # changed before the first message
                writer.set_settings(self.conversation, dataclasses.asdict(self.settings))
        message = writer.add_message(self.conversation, "user", text)
        self.transcript.append({"role": "user", "content": text})
        self.chat_screen.show_welcome(False)
        self.last = Exchange(text, message, self.chat_screen.chat.add_user(text))
        self._ask(self.last)

    def _ask(self, exchange: Exchange) -> None:
        """Stream the reply to the transcript, whose last message is `exchange`'s."""
        backend, entry, writer = self.backend, self.entry, self.history_writer
        exchange.reply = writer.begin_reply(
            self.conversation, backend=entry.backend, model=backend.model_name, gear_mode=self.gear_mode.value
        )
        exchange.reply_entry = self.chat_screen.chat.add_reply(f"{entry.backend} · {_model_label(backend.model_name)}")
        self._stream(Reply(exchange.reply, exchange.reply_entry, backend, self.gear_mode, self.clock()))

    def _continue(self, exchange: Exchange) -> None:
        """Stream more of `exchange`'s reply, the transcript's last message, into the same reply."""
        earlier = exchange.reply_facts
        self.history_writer.resume_reply(exchange.reply, gear_mode=gear_modes(earlier.gear_mode, self.gear_mode.value))
        self.chat_screen.chat.resume(exchange.reply_entry)
        entry = exchange.reply_entry
        self._stream(Reply(exchange.reply, entry, self.backend, self.gear_mode, self.clock(), text=entry.text,
                           earlier=earlier, first_row=exchange.reply_rows))

    def _stream(self, reply: Reply) -> None:
        """Ask the backend for `reply`: the answer to the transcript, or the rest of its last message."""
        backend = reply.backend
        self.reply = reply
        self.readings.new_reply(self.clock(), streaming_mode=self.gear_mode)
        if self.power is not None:
            self.power.mark_reply()
        settings = self.settings
        params = GenerationParams(
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            gear_mode=self.gear_mode,
            lossless_draft=parse_draft_gear(settings.lossless_draft),
            lossless_max_draft=settings.lossless_max_draft,
        )
        system = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
        messages = system + list(self.transcript)
        if isinstance(backend, LocalBackend):
            self._generate_in_thread(backend, messages, params, settings.context)
        else:
            self._generate_async(backend, messages, params)

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate_in_thread(
        self, backend: LocalBackend, messages: list[dict], params: GenerationParams, chat_context: int
    ) -> None:
        context = chat_context or backend.max_positions
        if context and backend.tokenizer is not None:  # the scripted stand-in has no tokens to count
            messages, left_out = _fit_context(backend, messages, context, params.max_tokens)
            if left_out:
                note = f"the oldest {left_out} messages were left out of this reply's prompt to fit the {context}-token context"
                self.events.put((self.clock(), Notice(note, "warning")))
        self._forward(backend.generate(messages, params))

    @work(exclusive=True, group="generate", exit_on_error=False)
    async def _generate_async(self, backend: Backend, messages: list[dict], params: GenerationParams) -> None:
        ended = False
        async for event in backend.stream(messages, params):
            self.events.put((self.clock(), event))
            ended = isinstance(event, ReplyDone)
        if not ended:
            self.events.put((self.clock(), ReplyDone("error", 0, 0.0, error="the backend stopped without ending the reply")))

    def _forward(self, events: Iterable) -> None:
        """Stamp and queue each event; nothing here touches the UI."""
        put, clock, ended = self.events.put, self.clock, False
        for event in events:
            put((clock(), event))
            ended = isinstance(event, ReplyDone)
        if not ended:
            put((clock(), ReplyDone("error", 0, 0.0, error="the backend stopped without ending the reply")))

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        """Every worker failure of the app lands here."""
        worker = event.worker
        if event.state is WorkerState.CANCELLED and worker.group == "generate" and self.reply is not None:
            self.events.put((self.clock(), ReplyDone("cancelled", self.reply.tokens, self._reply_seconds())))
        if event.state is not WorkerState.ERROR:
            return
        error = worker.error
        text = str(error) if isinstance(error, BackendError) else f"{type(error).__name__}: {error}"
        if worker.group == "load":
            if self._ui_alive():
                self._load_failed(text)
        elif worker.group == "generate":
            tokens = self.reply.tokens if self.reply else 0
            self.events.put((self.clock(), ReplyDone("error", tokens, self._reply_seconds(), error=text)))
        else:
            self.notify(text, title=f"{worker.name} failed", severity="error")

    def _reply_seconds(self) -> float:
        """How long the streaming reply has run, for an end the backend did not time itself."""
        return self.clock() - self.reply.started_at if self.reply else 0.0

    def _drain(self) -> None:
        """Apply every event that arrived since the last tick, as one batch."""
        if not self._ui_alive() or self._key_first("drain"):
            return
        self.history_writer.retry()
        batch = []
        try:
            while True:
                batch.append(self.events.get_nowait())
        except queue.Empty:
            pass
        if batch and self.reply is not None:
            self._apply(self.reply, batch)

    def _redraw_panes(self) -> None:
        """At most PANE_HZ times a second; checked as often as the drain, so that a tick that gave
        way to a key is made up 50 ms later, not a whole pane period later."""
        if not self.panes_stale or time.monotonic() - self.panes_at < 1 / PANE_HZ or not self._ui_alive():
            return
        if not self._key_first("panes"):
            self._refresh_panes()

    def _key_first(self, tick: str) -> bool:
        """True when `tick` should give way to a key pressed in the last drain period, so that the
        frame showing the key is not also the one drawing the tick's work. Never twice in a row:
        fast typing slows the chat and the panes down, it does not freeze them."""
        if time.monotonic() - self.key_at < 1 / DRAIN_HZ and tick not in self.gave_way:
            self.gave_way.add(tick)
            return True
        self.gave_way.discard(tick)
        return False

    def _apply(self, reply: Reply, batch: list[tuple[float, object]]) -> None:
        pieces: list[tuple[str, Gear]] = []
        rows: list[TokenRow] = []
        done: ReplyDone | None = None
        for at, event in batch:
            if isinstance(event, TokenEvent):
                if reply.live:
                    self.readings.add(at, event)
                if self.power is not None and event.is_token:
                    self.power.record_token(event.gear)
                pieces.append((event.text, event.gear))
                rows.append(_token_row(reply.first_row + reply.tokens + len(rows), event))
            elif isinstance(event, Notice):
                self.notify(event.text, severity=event.level)
            elif isinstance(event, PromptRead) and reply.live:
                rate = event.done / max(at - reply.started_at, 1e-9)
                self.chat_screen.chat.note(
                    reply.entry, f"reading the prompt: {event.done:,} of {event.total:,} tokens, {rate:,.0f} tokens/s so far"
                )
            elif isinstance(event, ReplyDone) and done is None:
                done = event
        reply.tokens += len(rows)
        reply.gears.update(row.gear for row in rows)
        reply.text += "".join(text for text, _ in pieces)
        facts = self._reply_facts(reply, done) if done is not None else None
        ending = {}
        if facts is not None:
            ending = {"end_reason": facts.end_reason, "seconds": facts.seconds, "first_token_s": facts.first_token_s,
                      "error": facts.error}
        self.history_writer.save_reply(reply.message, reply.text, rows, **ending)
        if reply.live:
            self.chat_screen.chat.append(reply.entry, pieces)
        if done is not None:
            self._finish_reply(reply, done, facts)
            self.readings.streaming_mode = None
        self.panes_stale = self.panes_stale or reply.live

    def _reply_facts(self, reply: Reply, done: ReplyDone) -> ReplyFacts:
        """The line under `reply`, which `done` ended: all of it where it was continued."""
        facts = ReplyFacts(
            done.tokens, done.seconds, done.first_token_s, reply.gear_mode.value, reply.gears, done.reason, done.error
        )
        return reply.earlier.continued_by(facts) if reply.earlier is not None else facts

    def _finish_reply(self, reply: Reply, done: ReplyDone, facts: ReplyFacts) -> None:
        self.reply = None
        if reply.live:
            self.readings.end_reply(done)
            if reply.earlier is not None:  # the transcript ends with the reply as it was before
                self.transcript[-1] = {"role": "assistant", "content": reply.text}
            elif reply.text:
                self.transcript.append({"role": "assistant", "content": reply.text})
            else:
                # Unanswered, the message leaves the next request (it stays in the chat and the
                # history): two user turns in a row are refused by servers that need them to alternate.
                self.transcript.pop()
            if self.last is not None and self.last.reply is reply.message:
                self.last.reply_facts, self.last.reply_rows = facts, reply.first_row + reply.tokens
            self.chat_screen.chat.finish(reply.entry, facts.line())  # an error is said here, under its reply
            if done.reason == "length" and self.settings.temperature == 0 and not self.said_loop:
                self._explain_a_loop(reply.text)
            if done.positions is not None:
                self.context_used = done.positions
                self._show_status()
        elif done.error:  # its chat is no longer on screen
            self.notify(done.error, title="a reply in another chat failed", severity="error", timeout=15)
        while self.retired:
            self.retired.pop().unload()

    def _explain_a_loop(self, text: str) -> None:
        """Once a session: a greedy reply that went round in a loop until the token limit."""
        if (piece := repeating_piece(text)) is None:
            return
        self.said_loop = True
        quoted = " ".join(piece.split())
        note = (
            f"the reply went round in a loop (“{quoted}”) until the token limit: greedy decoding (temperature 0) "
            f"often does on small models; {self.key('settings')} sets this chat's temperature (0.7 is common)"
        )
        self.notify(note, title="a looping reply", timeout=20)

    def _ui_alive(self) -> bool:
        """False once the app is closing: Textual takes the screen's widgets down before
        messages and timers from the workers stop arriving."""
        return self.is_running and self.chat_screen.is_attached

    def _refresh_panes(self) -> None:
        self.panes_stale, self.panes_at = False, time.monotonic()
        self.chat_screen.show_readings(self.readings, self.entry.backend if self.entry else None)

    def _show_power(self) -> None:
        if not self._ui_alive():
            return
        reading = self.power.reading() if self.power is not None else PowerReading(None, "power metering is off")
        self.chat_screen.show_power(reading)

    def _leave_reply(self) -> None:
        """Stop the streaming reply and detach it from the screen; it still ends in the store."""
        if self.reply is not None:
            self.reply.backend.cancel()
            self.reply.live = False

    # ---- actions ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The chat's keys do nothing while a picker or the help screen is open over it; Textual's
        own (tab and shift+tab between a screen's fields) still work there."""
        if isinstance(self.screen, ModalScreen) and not isinstance(self.screen, CommandPalette):
            return action in ("quit", "focus_next", "focus_previous")
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in KEYS:
            if key.id != "quit":  # Textual's own Quit command is already there
                yield SystemCommand(key.title, f"{key.help} ({self.keymap[key.id]})", getattr(self, f"action_{key.action}"))

    def action_help(self) -> None:
        rows = [(self.keymap[k.id].replace(",", ", ") or "no key: ctrl+p", k.id, k.help) for k in KEYS]
        note = "remap any key in config.toml, e.g. [keymap] cycle_gear = \"f12\"; every key is also a command in the palette (ctrl+p)"
        self.push_screen(HelpScreen(rows, note))

    def action_switch_backend(self) -> None:
        self.push_screen(BackendPicker(self.entry, lambda: self.discover(self.config)), self._backend_picked)

    def _backend_picked(self, entry: BackendEntry | None) -> None:
        if entry is None or entry == self.entry:
            return
        if self.reply is not None:
            self.reply.backend.cancel()
            self.notify("the streaming reply was stopped to switch backend")
        self.load_backend(entry)

    def action_cycle_gear(self) -> None:
        self.gear_mode = self.gear_mode.next()

    def watch_gear_mode(self, mode: GearMode) -> None:
        self.readings.gear_mode = mode
        self.chat_screen.show_gear(self.readings)  # only the pane that shows it: the key's frame stays small

    def action_toggle_panes(self) -> None:
        self.chat_screen.toggle_panes()

    def action_toggle_tint(self) -> None:
        self.gear_tint = not self.gear_tint

    def watch_gear_tint(self, tinted: bool) -> None:
        self.chat_screen.chat.set_tint(tinted)

    def action_new_chat(self) -> None:
        self._leave_reply()
        self.conversation = None
        self.transcript = []
        self.last = self.editing = None
        self._show_editing()
        self.context_used = None
        self._use_settings(self.config.generation)
        self.readings.new_session()
        self.chat_screen.chat.clear()
        self.chat_screen.show_welcome(True)
        self._refresh_panes()
        self.chat_screen.prompt.focus()

    def action_conversations(self) -> None:
        where = f"saved in {self.history.path}" if self.history.path else "history is in memory only (not saved)"
        if self.history_writer.paused:
            where += f" · history paused ({self.history_writer.paused}): the newest messages are not listed yet"
        try:
            self.history.conversations()
        except sqlite3.Error as e:
            self.notify(f"could not read the history: {e}", severity="error")
            return
        screen = ConversationList(self._search, where, self._rename_conversation, self._delete_conversation)
        self.push_screen(screen, self._open_conversation)

    def _search(self, words: str) -> list:
        try:
            return self.history.search(words)
        except sqlite3.Error as e:
            self.notify(f"could not search the history: {e}", severity="error")
            return []

    def _rename_conversation(self, conversation_id: int, title: str) -> None:
        self.history_writer.rename_conversation(self._row(conversation_id), title)

    def _delete_conversation(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:  # the chat on screen: it goes too
            self.action_new_chat()
        self.history_writer.delete_conversation(self._row(conversation_id))

    def _row(self, conversation_id: int) -> Row:
        return self.conversation if conversation_id == self.conversation_id else Row(conversation_id)

    def _open_conversation(self, conversation_id: int | None) -> None:
        if conversation_id is None:
            return
        try:
            stored = [(m, self.history.tokens(m.id)) for m in self.history.messages(conversation_id)]
            settings = self.history.settings(conversation_id)
        except sqlite3.Error as e:
            self.notify(f"could not read that conversation: {e}", severity="error")
            return
        self._leave_reply()
        chat = self.chat_screen.chat
        chat.clear()
        self.chat_screen.show_welcome(not stored)
        self.transcript = _answered_turns([{"role": m.role, "content": m.content} for m, _ in stored])
        self.last = self.editing = None
        self.context_used = None  # counted at the conversation's next reply
        self._show_editing()
        for m, tokens in stored:
            if m.role == "user":
                self.last = Exchange(m.content, Row(m.id), chat.add_user(m.content))
            else:
                pieces = [(t.text, Gear.parse(t.gear)) for t in tokens]
                reply_entry = chat.add_reply(f"{m.backend} · {_model_label(m.model or '')}", m.content, pieces)
                facts = stored_facts(m, tokens)
                chat.finish(reply_entry, facts.line())
                if self.last is not None:
                    self.last.reply, self.last.reply_entry = Row(m.id), reply_entry
                    self.last.reply_facts, self.last.reply_rows = facts, len(tokens)
        self.conversation = Row(conversation_id)
        self._use_settings(_stored_settings(settings, self.config.generation))
        replies = [(m, tokens) for m, tokens in stored if m.role == "assistant"]
        last = replies[-1][0] if replies else None
        here = (self.entry.backend, self.backend.model_name) if self.entry and self.backend else None
        self.readings.replay(
            [(tokens, _stored_end(m, len(tokens))) for m, tokens in replies],
            another_model=last is not None and (last.backend, last.model) != here,
        )
        self._refresh_panes()

    def action_copy_reply(self) -> None:
        entries = self.chat_screen.chat.entries
        choices = copyables([("assistant" if isinstance(e, ReplyEntry) else "user", e.text) for e in entries])
        if not choices:
            self.notify("nothing to copy yet", severity="warning")
            return
        self.push_screen(CopyPicker(choices), self._copy)

    def _copy(self, text: str | None) -> None:
        if text is None:
            return
        self.copy_to_clipboard(text)
        self.notify(f"copied {len(text):,} characters", timeout=3)

    def action_export(self) -> None:
        if self.conversation is None:
            self.notify("nothing to export yet: send a message first", severity="warning")
            return
        if self.conversation_id is None:
            why = self.history_writer.paused
            self.notify(f"nothing to export yet: history is paused ({why}) and this chat is not saved", severity="warning")
            return
        try:
            markdown, trace = export_conversation(self.history, self.conversation_id, export_dir(self.config.ui))
        except (OSError, sqlite3.Error) as e:
            self.notify(f"could not export: {e}", severity="error")
            return
        self.notify(f"{markdown}\n{trace}", title="exported to", timeout=15)

    def action_cancel(self) -> None:
        if self.reply is not None:
            self.reply.backend.cancel()
            self.notify("stopping the reply", timeout=2)
        elif self.editing is not None:  # leave the last message as it was
            self.editing = None
            self.chat_screen.prompt.clear()
            self._show_editing()
        elif self._drop_waiting() is not None:
            self.notify("kept in the prompt, unsent", timeout=3)

    def action_settings(self) -> None:
        if self.conversation is None:
            where = "kept with the chat your next message starts; new chats start from [generation] in config.toml"
        else:
            where = "kept with this chat; new chats start from [generation] in config.toml"
        if self.backend is not None and not isinstance(self.backend, LocalBackend):
            where += ". On a server backend, context and the gear thresholds are the server's and its router's"
        self.push_screen(SettingsScreen(self.settings, where), self._settings_saved)

    def _settings_saved(self, settings: GenerationConfig | None) -> None:
        if settings is None or settings == self.settings:
            return
        self._use_settings(settings)
        if self.conversation is not None:
            self.history_writer.set_settings(self.conversation, dataclasses.asdict(settings))
        self.notify("settings saved with this chat; they apply from the next reply", timeout=4)

    def action_regenerate(self) -> None:
        if (why := self._cannot_redo("regenerate")) is not None:
            self.notify(why, severity="warning")
            return
        last = self.last
        self._forget_reply(last)
        if not self.transcript or self.transcript[-1] != {"role": "user", "content": last.text}:
            self.transcript.append({"role": "user", "content": last.text})  # it was left out when its reply failed
        self._ask(last)

    def action_continue_reply(self) -> None:
        if (why := self._cannot_redo("continue")) is not None:
            self.notify(why, severity="warning")
            return
        last = self.last
        if last.reply_facts is None or not last.reply_entry.text:
            self.notify(f"the last reply has no text to continue: {self.key('regenerate')} asks again", severity="warning")
            return
        self._continue(last)

    def action_edit_last(self) -> None:
        if (why := self._cannot_redo("edit")) is not None:
            self.notify(why, severity="warning")
            return
        self.editing = self.last
        prompt = self.chat_screen.prompt
        prompt.text = self.last.text
        prompt.move_cursor(prompt.document.end)
        prompt.focus()
        self._show_editing()

    def _show_editing(self) -> None:
        prompt = self.chat_screen.prompt
        prompt.border_title = (
            f"editing your last message · enter replaces it and its reply · {self.key('cancel')} leaves it"
            if self.editing is not None
            else None
        )

    def _cannot_redo(self, what: str) -> str | None:
        """Why the last message cannot be regenerated or edited now, or None when it can."""
        if self.reply is not None:
            return f"a reply is still streaming: {self.key('cancel')} stops it first"
        if self.last is None:
            return f"nothing to {what} yet: send a message first"
        if self.backend is None:
            return f"{self.load_error or 'the model is still loading'}. {self.key('switch_backend')} picks a backend."
        return None

    def _forget_reply(self, last: Exchange) -> None:
        """Take the last reply and its token trace out of the store, the chat and the transcript."""
        if last.reply_entry is not None and last.reply_entry.text and self.transcript[-1:] == [
            {"role": "assistant", "content": last.reply_entry.text}
        ]:
            self.transcript.pop()
        if last.reply is not None:
            self.history_writer.delete_messages([last.reply])
            self.chat_screen.chat.remove(last.reply_entry)
        last.reply = last.reply_entry = last.reply_facts = None
        last.reply_rows = 0

    def _forget_last_message(self) -> None:
        """The edited message replaces the last one: that one and its reply go."""
        last, self.editing = self.editing, None
        self._show_editing()
        self._forget_reply(last)
        if self.transcript[-1:] == [{"role": "user", "content": last.text}]:
            self.transcript.pop()
        self.history_writer.delete_messages([last.message])
        self.chat_screen.chat.remove(last.entry)
        self.last = None


def _model_label(model: str) -> str:
    """A model on disk (a directory or a GGUF file) by its name, so that the status bar has room
    for the context (the full path is in the history); ids and tags as they are."""
    path = Path(model)
    return path.name if path.is_absolute() or path.exists() else model


def _context_label(backend: Backend, chat_context: int, used: int | None) -> str:
    """The positions of context the chat has, as the status bar shows them: the model's (a
    server's where it says), or the chat's own setting where smaller (the app fits a local
    model's prompt to it); and how many the chat filled at its last reply (its prompt and the
    reply) where that is known."""
    context = getattr(backend, "max_positions", None)
    local = isinstance(backend, LocalBackend)
    if not context:
        why = "the model does not say" if local else "the server's own"
        return f"n/a — {why}" if used is None else f"{used:,} used (size n/a: {why})"
    if local and chat_context:
        context = min(chat_context, context)
    return f"{context:,}" if used is None else f"{used:,} of {context:,} used"


def _fit_context(backend: LocalBackend, messages: list[dict], context: int, max_tokens: int) -> tuple[list[dict], int]:
    """The system prompt and the newest turns whose prompt leaves room for `max_tokens` in
    `context` tokens, and how many messages were left out. Turns go a message and its reply at
    a time, so that roles still alternate; the newest message always stays, with the message it
    answers where it is a reply being continued (the backend cuts them to fit if alone too long)."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = kept = messages[len(system) :]
    newest = 2 if continues_reply(turns) and len(turns) > 1 else 1
    while len(kept) > newest and len(backend.encode_chat(system + kept)) + max_tokens > context:
        kept = kept[2:]
    return system + kept, len(turns) - len(kept)


def _stored_settings(stored: dict | None, defaults: GenerationConfig) -> GenerationConfig:
    """A conversation's stored settings over the config's: keys this version does not know, or
    values it would refuse, are left at the config's."""
    fields = {f.name for f in dataclasses.fields(GenerationConfig)}

    def usable(key: str, value) -> bool:
        if key == "system_prompt":
            return isinstance(value, str)
        return key in fields and ((key == "seed" and value is None) or setting_problem(key, value) is None)

    settings = dataclasses.replace(defaults, **{k: v for k, v in (stored or {}).items() if usable(k, v)})
    return defaults if settings.problem() else settings


def _stored_end(message: StoredMessage, tokens: int) -> ReplyDone | None:
    """A stored reply's end as the speed pane shows it; None where it has no time stored."""
    if message.end_reason is None or message.seconds is None:
        return None
    return ReplyDone(message.end_reason, tokens, message.seconds, message.first_token_s)


def _answered_turns(messages: list[dict]) -> list[dict]:
    """The messages a next request is conditioned on: each user message with the reply that
    answered it; a message whose reply failed with no text is left out (see _finish_reply)."""
    turns = []
    for message, following in zip(messages, [*messages[1:], None]):
        if message["role"] == "user" and following is not None and following["role"] == "assistant" and following["content"]:
            turns += [message, following]
    return turns


def _freeze_startup_objects() -> None:
    """Move everything alive now out of the garbage collector's sight, and collect less often.

    A full collection walks every object torch, transformers and Textual made at startup:
    pauses of 200 ms on a 2-core machine, felt as frozen keys. Those objects live as long
    as the app, so there is nothing to gain from walking them again. Streaming allocates
    about 100,000 objects a second (frames, lines, events); at Python's default threshold
    that set off a full collection every second (10-25 ms each); a 10x higher first
    threshold makes it one every ten seconds or so."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _token_row(position: int, event: TokenEvent) -> TokenRow:
    return TokenRow(
        position=position,
        text=event.text,
        token_id=event.token_id,
        entropy_bits=event.entropy_bits,
        entropy_bits_lower=event.entropy_bits_lower,
        entropy_bits_upper=event.entropy_bits_upper,
        gear=event.gear.label,
        step_ms=event.step_ms,
        kept_from=event.kept_from,
        drafted=event.drafted,
    )
