"""The prompt: Textual's Input, except that typing into it does not lay out the whole screen,
and that it holds a prompt of a sane size.

Input keeps its virtual width equal to its text's, and that reactive asks for a layout of the
screen at every key press, a pass over every widget while a reply streams. The prompt's size
never depends on its text; its horizontal scroll limit is read from virtual_size directly,
so a repaint is enough.

Each key costs Input time in proportion to its text (20,000 typed characters took 35 s on two
cores, and a paste that reaches the app as keys can be far longer), so input past
MAX_PROMPT_CHARS is refused, and said once, not once per key.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Input

MAX_PROMPT_CHARS = 8000  # about 2,000 tokens: room for a reply in a 4k context


class Prompt(Input):
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_PROMPT_CHARS, **kwargs)
        self.said_full = False  # the notice for this time the prompt filled up is out

    def restricted(self) -> None:
        """Input would pass MAX_PROMPT_CHARS (Input's default rings the bell, once per key)."""
        if not self.said_full:
            self.said_full = True
            self.notify(
                f"the prompt holds at most {MAX_PROMPT_CHARS:,} characters: what was typed or pasted past that "
                "was dropped",
                title="prompt full",
                severity="warning",
            )

    def on_input_changed(self, event: Input.Changed) -> None:
        if len(self.value) < MAX_PROMPT_CHARS:
            self.said_full = False
