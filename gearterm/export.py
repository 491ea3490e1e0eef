"""A conversation out of the history store: Markdown for reading, JSONL of its per-token trace.

Each reply in the Markdown ends with the line the chat shows under it (tokens, time, tok/s,
gear mode and gear mix, how it ended).

The files are as private as the history they come from (0600, in a 0700 folder) and never
replace a file: a second export of a chat gets the next free name.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import asdict
from pathlib import Path

from gearterm.history import History
from gearterm.reply_line import stored_facts

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def export_conversation(history: History, conversation_id: int, directory: Path) -> tuple[Path, Path]:
    """Write gearterm-<id>.md and gearterm-<id>-tokens.jsonl (or -2, -3 ... where those exist)
    into `directory`; returns both absolute paths."""
    title = next((c.title for c in history.conversations() if c.id == conversation_id), "conversation")
    messages = [(m, history.tokens(m.id) if m.role == "assistant" else []) for m in history.messages(conversation_id)]
    parts = [f"# {title}\n"]
    for m, tokens in messages:
        if m.role == "user":
            parts.append(f"**You**\n\n{m.content}\n")
        else:
            parts.append(f"**{m.backend} · {m.model}**\n\n{m.content}\n\n_{stored_facts(m, tokens).line()}_\n")
    trace = [
        json.dumps({"message_id": m.id, **asdict(token)}, ensure_ascii=False) + "\n" for m, tokens in messages for token in tokens
    ]

    directory = directory.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    markdown_path, trace_path = _claim_names(directory, f"gearterm-{conversation_id}")
    markdown_path.write_text("\n".join(parts), encoding="utf-8")
    trace_path.write_text("".join(trace), encoding="utf-8")
    return markdown_path, trace_path


def _claim_names(directory: Path, stem: str) -> tuple[Path, Path]:
    """The first free pair of names, created private and empty."""
    for n in itertools.count(1):
        name = stem if n == 1 else f"{stem}-{n}"
        pair = (directory / f"{name}.md", directory / f"{name}-tokens.jsonl")
        if _create_private(pair):
            return pair


def _create_private(paths: tuple[Path, ...]) -> bool:
    """Create every one of `paths` (0600), or none when one exists. O_EXCL: an export made at the
    same moment by another gearterm cannot take the same names."""
    created = []
    try:
        for path in paths:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
            created.append(path)
    except FileExistsError:
        for path in created:
            path.unlink()
        return False
    return True
