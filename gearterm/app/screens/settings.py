"""The settings screen: the open conversation's system prompt and generation settings.

They start from [generation] in config.toml and are kept with the conversation; a new chat
starts from config.toml again. Each number is checked as the config file checks it
(config.setting_problem) and refused with the reason, field by field.
"""

from __future__ import annotations

import dataclasses

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from gearterm.config import GenerationConfig, setting_problem

# (setting, label, what it is): one line each, in the order shown
FIELDS = (
    ("temperature", "temperature", "0 = greedy (the most likely token), else 0.01 to 100"),
    ("top_p", "top-p", "nucleus sampling mass, above 0 up to 1"),
    ("max_tokens", "max tokens", "the longest reply, in tokens"),
    ("seed", "seed", "0 to 4294967295; empty = a new random seed each reply"),
    ("context", "context", "prompt + reply, in tokens; older turns are left out to fit; 0 = all the model holds"),
    ("low_below_bits", "low gear below", "bits at a 32k vocabulary (scaled to the model's); local models only"),
    ("high_above_bits", "high gear above", "bits at a 32k vocabulary (scaled to the model's); local models only"),
    ("lossless_draft", "lossless draft", "the gear that drafts in lossless mode: low, mid, or auto (the cheaper per kept token)"),
    ("lossless_max_draft", "longest draft", "tokens one lossless verify pass checks at most, 1 to 64"),
)
TYPES = {f.name: f.type for f in dataclasses.fields(GenerationConfig)}


class SettingsScreen(ModalScreen[GenerationConfig | None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="settings.close"),
        Binding("ctrl+s", "save", "Save", id="settings.save"),
    ]

    def __init__(self, settings: GenerationConfig, where: str):
        """`where`: which conversation the settings will be kept with."""
        super().__init__()
        self.settings = settings
        self.where = where

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-box", classes="modal-box"):
            yield Static("[b]Settings[/]  (ctrl+s or enter saves, esc closes without saving)", classes="modal-title")
            with VerticalScroll(id="settings-fields"):
                yield Label("system prompt (sent before the chat; empty = none)")
                yield TextArea(self.settings.system_prompt, id="system_prompt", soft_wrap=True, show_line_numbers=False)
                for name, label, hint in FIELDS:
                    value = getattr(self.settings, name)
                    with Horizontal(classes="setting-row"):
                        yield Label(label, classes="setting-label")
                        text = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
                        yield Input(text, id=name, compact=True)  # one line each: every field fits 80x24
                    yield Static(hint, id=f"{name}-hint", classes="setting-hint", markup=False)
            yield Static(self.where, id="settings-note", classes="modal-note", markup=False)

    def on_mount(self) -> None:
        self.query_one("#system_prompt").focus()

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        values, wrong = {"system_prompt": self.query_one("#system_prompt", TextArea).text.strip()}, []
        for name, label, hint in FIELDS:
            field = self.query_one(f"#{name}", Input)
            value, problem = _parse(name, field.value)
            field.set_class(problem is not None, "-invalid")
            self.query_one(f"#{name}-hint", Static).update(f"{label} {problem}" if problem else hint)
            if problem:
                wrong.append(name)
            else:
                values[name] = value
        if wrong:
            self.query_one(f"#{wrong[0]}", Input).focus()
            return
        settings = dataclasses.replace(self.settings, **values)
        if problem := settings.problem():
            self.query_one("#settings-note", Static).update(problem)
            self.query_one("#low_below_bits", Input).focus()
            return
        self.dismiss(settings)


def _parse(name: str, text: str) -> tuple[object, str | None]:
    """The setting `name` typed as `text`: its value, or why it cannot be that."""
    text = text.strip()
    if not text and TYPES[name] == "int | None":
        return None, None
    if TYPES[name] == "str":  # a choice: config.CHOICES names them
        return text, setting_problem(name, text)
    kind = float if TYPES[name] == "float" else int
    try:
        value = kind(text)
    except ValueError:
        return None, f"must be {'a number' if kind is float else 'a whole number'}, not {text!r}"
    return value, setting_problem(name, value)
