"""Conversation history: SQLite in the user data dir (WAL), with the per-token trace of every reply.

Finished messages are indexed for full-text search (FTS5). Each conversation may carry its
own settings (system prompt, sampling, gear thresholds) as JSON; none means the config's.

A reply is written while it streams (its row starts incomplete and gains text and tokens at
each UI tick), so a crash loses at most the last tick and leaves the reply marked incomplete.
The app writes through a HistoryWriter: a full disk or a locked database pauses the writing,
never the chat, and what waited is written once the store takes it again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DB_NAME = "history.sqlite3"
SCHEMA_VERSION = 4
# How long a write waits for another process's lock before writing pauses: the store is used
# from the UI thread, and another gearterm's writes take milliseconds.
BUSY_TIMEOUT_S = 0.2
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0  # the backoff between tries while writing is paused

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content TEXT NOT NULL,
    complete INTEGER NOT NULL,  -- 0 while a reply streams; stays 0 if the app died mid-reply
    end_reason TEXT,            -- stop, length, cancelled, cancelled (app quit), error; NULL: cut off by a crash
    backend TEXT,
    model TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
CREATE TABLE IF NOT EXISTS tokens (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    token_id INTEGER,
    entropy_bits REAL,          -- exact entropy, or NULL where the backend gives top-k bounds
    entropy_bits_lower REAL,
    entropy_bits_upper REAL,
    gear TEXT NOT NULL,         -- low, mid or high: the weights that produced this token
    step_ms REAL,
    PRIMARY KEY (message_id, position)
);
"""
# Version 1 -> 2, and a new store's second step. A message is indexed once it is complete: a
# streaming reply changes 20 times a second, and indexing each change would re-read it all.
MIGRATION_2 = """
ALTER TABLE messages ADD COLUMN gear_mode TEXT;      -- auto, low, mid or high: what the reply ran in
ALTER TABLE messages ADD COLUMN seconds REAL;        -- the reply's wall time, submit to end
ALTER TABLE messages ADD COLUMN first_token_s REAL;  -- submit to first token
ALTER TABLE conversations ADD COLUMN settings TEXT;  -- JSON; NULL: the config's defaults
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.complete BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.complete BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, complete ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) SELECT 'delete', old.id, old.content WHERE old.complete;
    INSERT INTO messages_fts(rowid, content) SELECT new.id, new.content WHERE new.complete;
END;
INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages WHERE complete;
"""
# Version 2 -> 3: a failed reply keeps its error, so a reopened chat says what the live one said.
MIGRATION_3 = """
ALTER TABLE messages ADD COLUMN error TEXT;  -- why a reply ended in error; NULL otherwise
"""
# Version 3 -> 4: lossless mode's tokens say whether a verified draft or the high gear made them.
MIGRATION_4 = """
ALTER TABLE tokens ADD COLUMN kept_from TEXT;  -- lossless mode: draft (verified) or high; NULL in other modes
ALTER TABLE tokens ADD COLUMN drafted INTEGER; -- lossless mode, on the high gear's tokens: drafts its verify pass checked
"""
MIGRATIONS = {2: MIGRATION_2, 3: MIGRATION_3, 4: MIGRATION_4}  # version -> the step that reaches it from the one before


@dataclass(frozen=True)
class TokenRow:
    position: int
    text: str
    token_id: int | None
    entropy_bits: float | None
    entropy_bits_lower: float | None
    entropy_bits_upper: float | None
    gear: str
    step_ms: float | None
    kept_from: str | None = None  # lossless mode: "draft" (verified) or "high"
    drafted: int | None = None  # lossless mode, on the high gear's tokens: drafts its verify pass checked


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    content: str
    complete: bool
    end_reason: str | None
    backend: str | None
    model: str | None
    gear_mode: str | None = None  # replies: the gear mode it ran in (None: stored before gearterm kept it)
    seconds: float | None = None  # replies: wall time, submit to end
    first_token_s: float | None = None  # replies: submit to first token
    error: str | None = None  # replies that ended in error: what went wrong


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    updated_at: float
    messages: int


class History:
    """One SQLite connection, used from the UI thread only. path None = in memory (not saved)."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None and not path.exists():
            # Create the file ourselves so it is private (0600) from its first byte;
            # SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(
            ":memory:" if path is None else str(path), isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
        self.db.execute("PRAGMA foreign_keys = ON")
        if path is not None:
            self.db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a killed process; only power loss can drop the last commits.
            self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:  # a write: only when new or old; every step or none
            steps = "".join(MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1))
            self.db.executescript(f"BEGIN; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def close(self) -> None:
        self.db.close()

    def new_conversation(self, title: str) -> int:
        now = time.time()
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)",
                (_title(title), now, now),
            )
        return cur.lastrowid

    def add_message(self, conversation_id: int, role: str, content: str, *, backend=None, model=None) -> int:
        return self._insert_message(conversation_id, role, content, True, backend, model)

    def begin_reply(self, conversation_id: int, *, backend: str, model: str, gear_mode: str | None = None) -> int:
        """An assistant message that is incomplete until save_reply(..., end_reason=...)."""
        return self._insert_message(conversation_id, "assistant", "", False, backend, model, gear_mode)

    def save_reply(
        self,
        message_id: int,
        content: str,
        tokens: Sequence[TokenRow],
        *,
        end_reason: str | None = None,
        seconds: float | None = None,
        first_token_s: float | None = None,
        error: str | None = None,
    ) -> None:
        """Append `tokens` and set the reply's text so far; end_reason marks it complete, and comes
        with the reply's timings where they are known and its error where it failed."""
        with self._transaction():
            self.db.executemany(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (message_id, t.position, t.text, t.token_id, t.entropy_bits, t.entropy_bits_lower,
                     t.entropy_bits_upper, t.gear, t.step_ms, t.kept_from, t.drafted)
                    for t in tokens
                ],
            )
            self.db.execute(
                "UPDATE messages SET content = ?, complete = ?, end_reason = ?, seconds = ?, first_token_s = ?, error = ? "
                "WHERE id = ?",
                (content, end_reason is not None, end_reason, seconds, first_token_s, error, message_id),
            )

    def resume_reply(self, message_id: int, *, gear_mode: str | None) -> None:
        """A finished reply streams again (it is being continued): incomplete until save_reply
        ends it, as a new reply is, and kept with the gear mode of its parts."""
        with self._transaction():
            self.db.execute(
                "UPDATE messages SET complete = 0, end_reason = NULL, error = NULL, gear_mode = ? WHERE id = ?",
                (gear_mode, message_id),
            )

    def delete_messages(self, message_ids: Sequence[int]) -> None:
        """Remove messages and their token traces (a regenerated reply, an edited message)."""
        with self._transaction():
            self.db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in message_ids])

    def delete_conversation(self, conversation_id: int) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        with self._transaction():
            self.db.execute("UPDATE conversations SET title = ? WHERE id = ?", (_title(title), conversation_id))

    def settings(self, conversation_id: int) -> dict | None:
        """The conversation's own settings, or None where it uses the config's."""
        row = self.db.execute("SELECT settings FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def set_settings(self, conversation_id: int, settings: dict) -> None:
        with self._transaction():
            self.db.execute("UPDATE conversations SET settings = ? WHERE id = ?", (json.dumps(settings), conversation_id))

    def search(self, words: str) -> list[ConversationSummary]:
        """Conversations whose title or any finished message holds every word (as a word prefix,
        ignoring case), newest first."""
        terms = words.split()
        if not terms:
            return self.conversations()
        query = " ".join('"' + term.replace('"', '""') + '"*' for term in terms)
        like = [f"%{term}%" for term in terms]
        return self._summaries(
            "WHERE c.id IN (SELECT m.conversation_id FROM messages m JOIN messages_fts f ON f.rowid = m.id "
            "WHERE messages_fts MATCH ?) OR (" + " AND ".join(["c.title LIKE ?"] * len(terms)) + ")",
            (query, *like),
        )

    def conversations(self) -> list[ConversationSummary]:
        return self._summaries("", ())

    def _summaries(self, where: str, parameters: tuple) -> list[ConversationSummary]:
        rows = self.db.execute(
            "SELECT c.id, c.title, c.updated_at, COUNT(m.id) FROM conversations c "
            f"LEFT JOIN messages m ON m.conversation_id = c.id {where} "
            "GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC",
            parameters,
        )
        return [ConversationSummary(*row) for row in rows]

    def sent_messages(self, limit: int) -> list[str]:
        """The user's last `limit` messages across every conversation, oldest first (what the
        prompt's up key recalls); a message sent twice in a row counts once."""
        rows = self.db.execute("SELECT content FROM messages WHERE role = 'user' ORDER BY id DESC LIMIT ?", (limit,))
        oldest_first = [content for (content,) in rows][::-1]
        return [m for i, m in enumerate(oldest_first) if i == 0 or m != oldest_first[i - 1]]

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self.db.execute(
            "SELECT id, role, content, complete, end_reason, backend, model, gear_mode, seconds, first_token_s, error "
            "FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
        return [StoredMessage(i, role, content, bool(done), *rest) for i, role, content, done, *rest in rows]

    def tokens(self, message_id: int) -> list[TokenRow]:
        rows = self.db.execute(
            "SELECT position, text, token_id, entropy_bits, entropy_bits_lower, entropy_bits_upper, gear, step_ms, kept_from, drafted "
            "FROM tokens WHERE message_id = ? ORDER BY position",
            (message_id,),
        )
        return [TokenRow(*row) for row in rows]

    def _insert_message(self, conversation_id, role, content, complete, backend, model, gear_mode=None) -> int:
        now = time.time()
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO messages (conversation_id, role, content, complete, backend, model, gear_mode, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, complete, backend, model, gear_mode, now),
            )
            self.db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return cur.lastrowid

    def _transaction(self):
        return _Transaction(self.db)


def _title(text: str) -> str:
    """A conversation's title: the first line of `text` that has words, cut to 80 characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:80] if lines else "untitled"


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK on error (the connection runs in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN")

    def __exit__(self, kind, value, traceback):
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # A full disk ends the transaction itself; a busy COMMIT leaves it open.
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


@dataclass(eq=False)
class Row:
    """A conversation or message as the app knows it: `id` is its row id once it is stored."""

    id: int | None = None


@dataclass
class _ReplySave:
    """The text and new tokens of a streaming reply: saves of one reply that wait merge into one."""

    message: Row
    content: str
    tokens: list[TokenRow] = field(default_factory=list)
    end_reason: str | None = None
    seconds: float | None = None
    first_token_s: float | None = None
    error: str | None = None

    def __call__(self, history: History) -> None:
        history.save_reply(
            self.message.id,
            self.content,
            self.tokens,
            end_reason=self.end_reason,
            seconds=self.seconds,
            first_token_s=self.first_token_s,
            error=self.error,
        )


class HistoryWriter:
    """The app's writes to the history, in order. When the store refuses one (a full disk, a
    database another process holds locked) writing pauses, the chat does not: the writes wait
    in memory, are tried again with backoff, and go in, in order, once the store takes them.
    `notify(text, severity)` hears once when writing pauses and once when it resumes."""

    def __init__(self, history: History, notify: Callable[[str, str], None], clock: Callable[[], float] = time.monotonic):
        self.history = history
        self.notify = notify
        self.clock = clock
        self.waiting: list[Callable[[History], None]] = []
        self.paused: str | None = None  # why writing is paused; None while it goes on
        self.backoff = RETRY_FIRST_S
        self.retry_at = 0.0

    def new_conversation(self, title: str) -> Row:
        conversation = Row()
        self._write(lambda h: setattr(conversation, "id", h.new_conversation(title)))
        return conversation

    def add_message(self, conversation: Row, role: str, content: str) -> Row:
        message = Row()
        self._write(lambda h: setattr(message, "id", h.add_message(conversation.id, role, content)))
        return message

    def begin_reply(self, conversation: Row, *, backend: str, model: str, gear_mode: str | None = None) -> Row:
        message = Row()
        self._write(
            lambda h: setattr(message, "id", h.begin_reply(conversation.id, backend=backend, model=model, gear_mode=gear_mode))
        )
        return message

    def save_reply(
        self,
        message: Row,
        content: str,
        tokens: Sequence[TokenRow],
        *,
        end_reason: str | None = None,
        seconds: float | None = None,
        first_token_s: float | None = None,
        error: str | None = None,
    ) -> None:
        last = self.waiting[-1] if self.waiting else None
        if isinstance(last, _ReplySave) and last.message is message:
            last.content, last.end_reason, last.seconds, last.first_token_s = content, end_reason, seconds, first_token_s
            last.error = error
            last.tokens.extend(tokens)
        else:
            self._write(_ReplySave(message, content, list(tokens), end_reason, seconds, first_token_s, error))

    def resume_reply(self, message: Row, *, gear_mode: str | None) -> None:
        self._write(lambda h: h.resume_reply(message.id, gear_mode=gear_mode))

    def delete_messages(self, messages: Sequence[Row]) -> None:
        self._write(lambda h: h.delete_messages([m.id for m in messages]))

    def delete_conversation(self, conversation: Row) -> None:
        self._write(lambda h: h.delete_conversation(conversation.id))

    def rename_conversation(self, conversation: Row, title: str) -> None:
        self._write(lambda h: h.rename_conversation(conversation.id, title))

    def set_settings(self, conversation: Row, settings: dict) -> None:
        self._write(lambda h: h.set_settings(conversation.id, settings))

    def retry(self) -> None:
        """Try the waiting writes again if writing is paused and the backoff has passed."""
        if self.paused is not None and self.clock() >= self.retry_at:
            self.flush()

    def flush(self) -> None:
        """Write everything that waits, in order, until the store refuses one."""
        written = 0
        while self.waiting:
            try:
                self.waiting[0](self.history)
            except sqlite3.Error as e:
                self._pause(str(e))
                return
            self.waiting.pop(0)
            written += 1
        if self.paused is not None:
            self.paused, self.backoff = None, RETRY_FIRST_S
            self.notify(f"history resumed: the {written} writes that waited are saved", "information")

    def _write(self, write: Callable[[History], None]) -> None:
        self.waiting.append(write)
        if self.paused is None:
            self.flush()

    def _pause(self, reason: str) -> None:
        if self.paused is None:
            self.notify(
                f"history paused: {reason}. The chat goes on; what it would save waits in memory "
                "and is written when the history can be written again.",
                "warning",
            )
        else:
            self.backoff = min(2 * self.backoff, RETRY_MAX_S)
        self.paused, self.retry_at = reason, self.clock() + self.backoff


def open_history(directory: Path) -> tuple[History, str | None]:
    """The history database in `directory`, or an in-memory one and the reason it could not be saved."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return History(directory / DB_NAME), None
    except (OSError, sqlite3.Error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return History(None), (
            f"history is not being saved: cannot write {directory} ({reason}). "
            "Set GEARTERM_DATA_DIR to a writable folder to keep conversations."
        )
