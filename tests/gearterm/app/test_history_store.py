"""The history store: a private WAL database whose replies are saved while they stream."""

import sqlite3
import stat

from gearterm.history import DB_NAME, History, TokenRow, open_history


def _token(position: int, gear: str = "low") -> TokenRow:
    return TokenRow(position, f" t{position}", position + 3, 0.5 * position, None, None, gear, 2.0)


def test_the_database_is_private_and_in_wal_mode(tmp_path):
    history, problem = open_history(tmp_path / "data")
    assert problem is None
    path = tmp_path / "data" / DB_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert history.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    history.close()


def test_a_reply_is_incomplete_until_it_ends_and_keeps_its_trace(tmp_path):
    history = History(tmp_path / DB_NAME)
    conversation = history.new_conversation("What is a gear?\nsecond line")
    history.add_message(conversation, "user", "What is a gear?")
    reply = history.begin_reply(conversation, backend="hf", model="tiny")
    history.save_reply(reply, " t0 t1", [_token(0), _token(1, "high")])
    [_, streaming] = history.messages(conversation)
    assert (streaming.complete, streaming.end_reason, streaming.content) == (False, None, " t0 t1")
    history.save_reply(reply, " t0 t1 t2", [_token(2, "mid")], end_reason="stop")
    history.close()

    reopened = History(tmp_path / DB_NAME)
    [summary] = reopened.conversations()
    assert (summary.title, summary.messages) == ("What is a gear?", 2)
    [user, done] = reopened.messages(conversation)
    assert (user.role, user.content, done.complete, done.end_reason) == ("user", "What is a gear?", True, "stop")
    assert reopened.tokens(reply) == [_token(0), _token(1, "high"), _token(2, "mid")]


def test_an_unwritable_data_dir_gives_an_in_memory_store_and_says_why(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    history, problem = open_history(blocker / "gearterm")  # fails even for root
    assert history.path is None
    assert "history is not being saved" in problem and str(blocker / "gearterm") in problem
    assert "GEARTERM_DATA_DIR" in problem
    conversation = history.new_conversation("still works")
    history.add_message(conversation, "user", "still works")
    assert [m.content for m in history.messages(conversation)] == ["still works"]


def test_token_rows_survive_another_connection_reading_mid_reply(tmp_path):
    history = History(tmp_path / DB_NAME)
    conversation = history.new_conversation("x")
    reply = history.begin_reply(conversation, backend="hf", model="tiny")
    history.save_reply(reply, " t0", [_token(0)])
    reader = sqlite3.connect(tmp_path / DB_NAME)  # what a second process would see right now
    assert reader.execute("SELECT complete, content FROM messages WHERE id = ?", (reply,)).fetchone() == (0, " t0")
    assert reader.execute("SELECT COUNT(*) FROM tokens").fetchone() == (1,)
