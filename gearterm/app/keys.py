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
    Key("cycle_gear", "f3", "cycle_gear", "Gear mode", "cycle the gear mode: auto, low, mid, high, lossless"),
    Key("toggle_tint", "f4", "toggle_tint", "Tint", "tint each reply token by the gear that produced it"),
    Key("new_chat", "f5", "new_chat", "New chat", "start a new conversation"),
    Key("conversations", "f6", "conversations", "Chats", "list saved conversations and open one"),
    Key("copy_reply", "f7", "copy_reply", "Copy", "copy the last reply, a code block or any message (from a list)"),
    Key("export", "f8", "export", "Export", "write the chat as Markdown and its token trace as JSONL"),
    Key("settings", "f9", "settings", "Settings", "this chat's system prompt, sampling, context and gear thresholds"),
    Key("regenerate", "ctrl+r", "regenerate", "Regenerate", "replace the last reply with a new one"),
    Key("edit_last", "ctrl+l", "edit_last", "Edit last", "edit your last message; enter replaces it and its reply"),
    Key("toggle_panes", "ctrl+o", "toggle_panes", "Panes", "hide or show the side panes (a one-line strip stays)"),
    # Not ctrl+k: the prompt has focus most of the time, and there ctrl+k deletes to the end of the line.
    Key("continue_reply", "ctrl+g", "continue_reply", "Continue", "go on with the last reply (one cut off by length or a cancel)"),
    Key("cancel", "escape", "cancel", "Cancel", "stop the reply; leave an edit; keep a message waiting for the model unsent"),
    Key("quit", "ctrl+q", "quit", "Quit", "leave gearterm"),
)

KEY_IDS = frozenset(k.id for k in KEYS)


def resolve_keymap(remapped: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The keys of every binding id once the config's [keymap] is applied, and a note for each
    key two bindings wanted.

    A key [keymap] gives a binding is taken from the binding that has it by default (the
    user asked for it); a key [keymap] gives two bindings stays with the first in KEYS order,
    and the second keeps its default keys. A binding left with no key is still in the
    palette. Keys are compared as Textual names them ("f9", "ctrl+g")."""
    defaults = {k.id: _split(k.keys) for k in KEYS}
    wanted = {binding_id: _split(keys) for binding_id, keys in remapped.items()}
    taken: dict[str, str] = {}  # key -> the binding it went to
    notes: list[str] = []
    resolved: dict[str, list[str]] = {}
    for k in KEYS:  # the config's choices first, so that they win over defaults
        if k.id not in wanted:
            continue
        keys = []
        for key in wanted[k.id]:
            if key in taken:
                notes.append(f"{key} is set for both {taken[key]} and {k.id} in [keymap]: it stays with {taken[key]}")
            else:
                keys.append(key)
        if not keys:
            keys = [key for key in defaults[k.id] if key not in taken]
            notes.append(f"{k.id} keeps {_said(keys)}")
        resolved[k.id] = keys
        taken.update((key, k.id) for key in keys)
    for k in KEYS:
        if k.id in resolved:
            continue
        lost = [key for key in defaults[k.id] if key in taken]
        resolved[k.id] = [key for key in defaults[k.id] if key not in taken]
        for key in lost:
            notes.append(f"{key} now runs {taken[key]} ([keymap]); {k.id} is left with {_said(resolved[k.id])}")
    return {binding_id: ",".join(keys) for binding_id, keys in resolved.items()}, notes


def first_key(keys: str) -> str:
    """The key to name where the UI says which key does something; a binding with none has the palette."""
    return keys.split(",")[0] if keys else "ctrl+p"


def _split(keys: str) -> list[str]:
    return [key.strip().lower() for key in keys.split(",") if key.strip()]


def _said(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "no key (ctrl+p still runs it)"
