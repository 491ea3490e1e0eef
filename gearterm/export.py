"""A conversation out of the history store: Markdown for reading, JSONL of its per-token trace."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from gearterm.history import History


def export_conversation(history: History, conversation_id: int, directory: Path) -> tuple[Path, Path]:
    """Write gearterm-<id>.md and gearterm-<id>-tokens.jsonl into `directory`; returns both paths."""
    title = next((c.title for c in history.conversations() if c.id == conversation_id), "conversation")
    messages = history.messages(conversation_id)
    directory.mkdir(parents=True, exist_ok=True)
    markdown_path = directory / f"gearterm-{conversation_id}.md"
    trace_path = directory / f"gearterm-{conversation_id}-tokens.jsonl"

    parts = [f"# {title}\n"]
    for m in messages:
        if m.role == "user":
            parts.append(f"**You**\n\n{m.content}\n")
        else:
            ending = m.end_reason or "incomplete: the app stopped mid-reply"
            parts.append(f"**{m.backend} · {m.model}** ({ending})\n\n{m.content}\n")
    markdown_path.write_text("\n".join(parts), encoding="utf-8")

    with trace_path.open("w", encoding="utf-8") as out:
        for m in messages:
            if m.role != "assistant":
                continue
            for token in history.tokens(m.id):
                out.write(json.dumps({"message_id": m.id, **asdict(token)}, ensure_ascii=False) + "\n")
    return markdown_path, trace_path
