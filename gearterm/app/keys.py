"""The app's key bindings as plain data: ids (for the [keymap] config block), default keys, actions.

Defaults are F-keys and ctrl combinations, which reach the app in every common terminal and
inside tmux or screen, and never a plain letter: a letter is typing, whichever widget has focus.
ctrl+b (tmux) and ctrl+a (screen) are left alone. Every binding is also a command in the
palette (ctrl+p).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    id: str  # the name used in the [keymap] config block
    keys: str  # Textual key names, comma separated
    action: str  # an action of the app
    title: str  # short, for the footer and the palette
    help: str  # one line, for the help screen and the palette


KEYS: tuple[Key, ...] = (
    Key("help", "f1", "help", "Help", "show every key and what it does"),
    Key("switch_backend", "f2", "switch_backend", "Backend", "pick another backend or model; the chat stays"),
    Key("cycle_gear", "f3", "cycle_gear", "Gear mode", "cycle the gear mode: auto, low, mid, high"),
    Key("toggle_tint", "f4", "toggle_tint", "Tint", "tint each reply token by the gear that produced it"),
    Key("new_chat", "f5", "new_chat", "New chat", "start a new conversation"),
    Key("conversations", "f6", "conversations", "Chats", "list saved conversations and open one"),
    Key("copy_reply", "f7", "copy_reply", "Copy", "copy the last reply to the clipboard"),
    Key("export", "f8", "export", "Export", "write the chat as Markdown and its token trace as JSONL"),
    Key("cancel", "escape", "cancel", "Cancel", "stop the reply being generated"),
    Key("quit", "ctrl+q", "quit", "Quit", "leave gearterm"),
)

KEY_IDS = frozenset(k.id for k in KEYS)
