"""The history store fails under the app (a full disk, a database another process has locked)
and the app chats on: it says once that history is paused and why, and when the store takes
writes again everything that waited is saved, in order. A quit mid-reply is stored as one.

The store is real SQLite: a full disk is its own error, raised by capping the database's size
with PRAGMA max_page_count on the app's connection; the lock is a second connection's
BEGIN EXCLUSIVE. The model is the real pocket model, except where a reply must be held
mid-stream on cue (the scripted stand-in)."""

import sqlite3

from app_helpers import loaded, make_app, say, wait_for

from gearterm.app.app import QUIT_REASON
from gearterm.config import BackendEntry
from gearterm.history import History

POCKET = BackendEntry(label="pocket", backend="hf")
SIZE = (120, 40)


def _notes(app, fragment: str) -> list[str]:
    return [n.message for n in app._notifications if fragment in n.message]


def _stored(path):
    db = sqlite3.connect(path)
    messages = db.execute("SELECT id, role, content, complete, end_reason FROM messages ORDER BY id").fetchall()
    tokens = {i: db.execute("SELECT COUNT(*) FROM tokens WHERE message_id = ?", (i,)).fetchone()[0] for i, *_ in messages}
    db.close()
    return messages, tokens


async def _chat_through_a_fault(tmp_path, start_fault, end_fault, reason: str):
    path = tmp_path / "history.sqlite3"
    # Small pages: a capped database can still take a write that fits in a page it has, and a
    # reply's dozen token rows then need new pages, as on a full disk every write needs room.
    small = sqlite3.connect(path)
    small.execute("PRAGMA page_size = 512")
    small.execute("PRAGMA journal_mode = WAL")
    small.close()
    app = make_app(tmp_path, entry=POCKET, max_tokens=12, history=History(path))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        app.backend.eos_ids = set()  # every reply its 12 tokens, whatever the model would end it at
        await say(pilot, app, "before")
        start_fault(app)
        await say(pilot, app, "during")  # the reply streams and ends while nothing can be written
        await say(pilot, app, "still during")
        assert len(app.transcript) == 6 and app.reply is None  # the chat went on
        assert app.history_writer.paused is not None and reason in app.history_writer.paused
        [paused] = _notes(app, "history paused")  # said once, for two replies' worth of failed ticks
        assert paused.startswith(f"history paused: {reason}.")
        end_fault(app)
        # Textual shows a notice by a message to the app, handled a tick after the writer resumed.
        await wait_for(pilot, lambda: _notes(app, "history resumed"), "the note that history resumed")
        assert app.history_writer.paused is None and len(_notes(app, "history resumed")) == 1
        await say(pilot, app, "after")
        transcript = list(app.transcript)
    messages, tokens = _stored(path)
    assert [(role, content) for _, role, content, _, _ in messages] == [(m["role"], m["content"]) for m in transcript]
    replies = [(complete, end_reason, tokens[i]) for i, role, _, complete, end_reason in messages if role == "assistant"]
    assert replies == [(1, "length", 12)] * 4  # with every token of their traces


async def test_a_full_disk_pauses_history_and_what_waited_is_saved_when_space_returns(tmp_path):
    def fill(app):
        pages = app.history.db.execute("PRAGMA page_count").fetchone()[0]
        app.history.db.execute(f"PRAGMA max_page_count = {pages}")

    def free(app):
        app.history.db.execute("PRAGMA max_page_count = 1073741823")

    await _chat_through_a_fault(tmp_path, fill, free, "database or disk is full")


async def test_a_database_locked_by_another_process_pauses_history_until_the_lock_goes(tmp_path):
    other = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)

    def lock(app):
        other.execute("BEGIN EXCLUSIVE")

    def unlock(app):
        other.execute("COMMIT")

    try:
        await _chat_through_a_fault(tmp_path, lock, unlock, "database is locked")
    finally:
        other.close()


async def test_a_new_conversation_started_while_paused_is_saved_whole(tmp_path):
    """The conversation's own row waits too: its messages are written after it, under its id."""
    app = make_app(tmp_path, entry=POCKET, max_tokens=5)
    other = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot, app)
            other.execute("BEGIN EXCLUSIVE")
            await say(pilot, app, "hello")
            assert app.conversation is not None and app.conversation_id is None  # not stored yet
            await pilot.press("f8")  # export: nothing stored to export, and it says why
            assert _notes(app, "history is paused (database is locked) and this chat is not saved")
            other.execute("COMMIT")
            await wait_for(pilot, lambda: app.conversation_id is not None, "the conversation to be stored")
            assert [(m.role, m.content) for m in app.history.messages(app.conversation_id)] == [
                ("user", "hello"), ("assistant", app.transcript[-1]["content"])
            ]
    finally:
        other.close()


async def test_quitting_mid_reply_stores_the_reply_as_cancelled_by_the_quit(tmp_path):
    app = make_app(tmp_path, hold_after=5)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press(*"go", "enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.tokens == 5, "five tokens")
        drawn = app.reply.text
        await pilot.press("ctrl+q")
    messages, tokens = _stored(tmp_path / "history.sqlite3")
    [(reply_id, _, content, complete, end_reason)] = [m for m in messages if m[1] == "assistant"]
    assert (complete, end_reason, tokens[reply_id]) == (1, QUIT_REASON, 5)
    assert content == drawn and content.strip()  # the five tokens' text is kept


def test_quitting_while_history_is_paused_says_what_was_not_saved(tmp_path, monkeypatch, capsys):
    """`gearterm` itself: its run() stands in for a session (no terminal under pytest) that ends
    with a message waiting while another process holds the history's lock."""
    from gearterm.app.app import GeartermApp
    from gearterm.cli import main

    monkeypatch.setenv("GEARTERM_DATA_DIR", str(tmp_path))
    other = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)

    def session(app):
        other.execute("BEGIN EXCLUSIVE")
        app.history_writer.new_conversation("unsaved")
        app.on_unmount()  # what Textual runs at exit: a last try at the waiting writes

    monkeypatch.setattr(GeartermApp, "run", session)
    try:
        assert main([]) == 1
    finally:
        other.close()
    assert capsys.readouterr().err == (
        "gearterm: error: history was still paused at exit (database is locked): the latest messages were not "
        "saved; free space or end what locks it before the next session\n"
    )
