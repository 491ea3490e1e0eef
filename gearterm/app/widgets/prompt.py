"""The prompt: the message being written, on as many lines as it needs.

enter sends it; ctrl+j starts a new line (it reaches the app in every terminal and inside tmux
or screen, where shift+enter and alt+enter often never arrive; those work too where they do).
A paste keeps its newlines. up on the first line and down on the last walk through the
messages sent before, in this session and earlier ones; the text being written waits at the
end of that list.

Each edit costs the editor time in proportion to its line's length (it wraps the line again),
and a paste that reaches the app as keys, not as one paste, can be 100,000 keys: one edit per
key took over a minute for 8,000 characters. So typed characters are gathered and inserted in one
edit once the keys already waiting have been read (at once when typing by hand), and text past
the prompt's limit (prompt_limit: about what the model's context holds) is refused, and said
once, not once per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

# Characters a token, about: SmolLM2's tokenizer reads TinyStories at 4.0, the pocket model's at 3.5.
CHARS_PER_TOKEN = 4
PROMPT_CHARS = (8_000, 200_000)  # at least, at most: a 200,000-character line took 0.36 s a key here
PROMPT_CHARS_UNKNOWN = 32_000  # a server's model, whose context the app is not told


def prompt_limit(context: int | None) -> tuple[int, str]:
    """The characters the prompt takes for a model of `context` tokens (None: not known), and why:
    a paste the context can hold is never cut here (the context's own fit says what it leaves out)."""
    if not context:
        return PROMPT_CHARS_UNKNOWN, "the model's context is not known here"
    low, high = PROMPT_CHARS
    return min(max(CHARS_PER_TOKEN * context, low), high), f"about the model's {context:,}-token context"


NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")


class Prompt(TextArea):
    @dataclass
    class Submitted(Message):
        """enter was pressed: `text` is what the prompt holds."""

        prompt: "Prompt"
        text: str

        @property
        def control(self) -> "Prompt":
            return self.prompt

    def __init__(self, sent: Sequence[str] = (), *, help_key: str = "f1", id: str | None = None):
        """`sent`: earlier messages, oldest first, for up and down to recall."""
        placeholder = f"Message · enter sends · ctrl+j new line · ↑ earlier messages · {help_key} keys · ctrl+p commands"
        super().__init__(soft_wrap=True, tab_behavior="focus", placeholder=placeholder, highlight_cursor_line=False, id=id)
        self.sent = list(sent)
        self.recalled: int | None = None  # index into `sent` of the message shown, None: the draft
        self.draft = ""  # what was being written before up recalled an earlier message
        self.said_full = False  # the notice for the message being written is out (once a message, not once a key)
        self.typed: list[str] = []  # characters typed and not inserted yet
        self.max_chars, self.max_chars_why = prompt_limit(None)  # the app sets them for each model

    def remember(self, text: str) -> None:
        """A message was sent: it is the newest for up to recall, and recalling starts over; a
        prompt that fills up again says so again."""
        if not self.sent or self.sent[-1] != text:
            self.sent.append(text)
        self.recalled, self.draft, self.said_full = None, "", False

    def type_in(self, text: str) -> None:
        """Insert `text` at the cursor as if typed (the chat hands over keys typed while it had focus)."""
        self._insert_typed()
        self._insert_within_limit(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # TextArea selects a line and everything on f6 and f7; here those keys belong to the app
        # (chat list and copy), and a refused action passes the key on to the next binding.
        if action in ("select_line", "select_all"):
            return False
        return super().check_action(action, parameters)

    async def _on_key(self, event: events.Key) -> None:
        # Runs before TextArea's own key handler: prevent_default() keeps that one from running.
        if event.is_printable:
            self._stop(event)
            if not self.typed:  # queued behind the keys that wait now: one edit for all of them
                self.call_later(self._insert_typed)
            self.typed.append(event.character)
            return
        self._insert_typed()  # what was typed goes in before any other key acts on the text
        row, _ = self.cursor_location
        if event.key == "enter":
            self._stop(event)
            self.post_message(self.Submitted(self, self.text))
        elif event.key in NEWLINE_KEYS:
            self._stop(event)
            self._insert_within_limit("\n")
        elif event.key == "up" and row == 0 and self.sent and self.recalled != 0:
            self._stop(event)
            self._recall(len(self.sent) - 1 if self.recalled is None else self.recalled - 1)
        elif event.key == "down" and row == self.document.line_count - 1 and self.recalled is not None:
            self._stop(event)
            self._recall(self.recalled + 1)
        else:
            # The editor's own keys (backspace, arrows...) act now, in the order typed: as bindings
            # they would run only once the key had travelled up to the app, after characters typed
            # behind it (keys that arrive in a burst, as tmux or a fast typist sends them).
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if await self.app.run_action(binding.action, self):
                    self._stop(event)
                    return

    async def _on_paste(self, event: events.Paste) -> None:
        self._stop(event)
        self._insert_typed()
        self._insert_within_limit(event.text)

    def _insert_typed(self) -> None:
        if self.typed:
            text, self.typed = "".join(self.typed), []
            self._insert_within_limit(text)

    def _stop(self, event: events.Event) -> None:
        event.stop()
        event.prevent_default()

    def _recall(self, index: int) -> None:
        if self.recalled is None:
            self.draft = self.text
        self.recalled = index if index < len(self.sent) else None
        self.text = self.draft if self.recalled is None else self.sent[self.recalled]
        self.move_cursor(self.document.end)

    def _room(self) -> int:
        start, end = sorted(self.selection)
        return self.max_chars - len(self.text) + len(self.get_text_range(start, end))

    def _insert_within_limit(self, text: str) -> None:
        room = self._room()
        if len(text) > room:
            text = text[: max(room, 0)]
            self._restricted()
        if text:
            result = self.replace(text, *self.selection, maintain_selection_offset=False)
            self.move_cursor(result.end_location)

    def _restricted(self) -> None:
        if not self.said_full:
            self.said_full = True
            self.notify(
                f"the prompt holds at most {self.max_chars:,} characters ({self.max_chars_why}): what was "
                "typed or pasted past that was dropped",
                title="prompt full",
                severity="warning",
            )
