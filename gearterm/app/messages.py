"""Messages between the app's workers, screens and widgets (posted, never called across)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from gearterm.backends.base import Backend
from gearterm.config import BackendEntry


@dataclass
class LoadProgress(Message):
    """A model load moved on (posted from the load worker's thread)."""

    entry: BackendEntry
    fraction: float
    text: str


@dataclass
class BackendReady(Message):
    """A backend finished loading and can take the next reply."""

    entry: BackendEntry
    backend: Backend


@dataclass
class ChoicesFound(Message):
    """The backend picker's discovery worker finished: what it found and what it could not reach."""

    entries: list[BackendEntry]
    notes: list[str]


@dataclass
class TypedInChat(Message):
    """A printable key reached the chat while it had focus: it belongs in the prompt."""

    text: str
