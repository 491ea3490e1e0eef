"""The history store: a private WAL database whose replies are saved while they stream."""

import sqlite3
import stat

import pytest

from gearterm.history import DB_NAME, SCHEMA_VERSION, History, HistoryWriter, TokenRow, open_history


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


def test_the_writer_pauses_on_a_locked_database_backs_off_and_writes_in_order(tmp_path):
    """A second connection holds the write lock; a fake clock stands in for the backoff's seconds."""
    history = History(tmp_path / DB_NAME)
    said, now = [], [0.0]
    writer = HistoryWriter(history, lambda text, severity: said.append((severity, text)), clock=lambda: now[0])
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    conversation = writer.new_conversation("locked")
    writer.add_message(conversation, "user", "hi")
    reply = writer.begin_reply(conversation, backend="hf", model="tiny")
    writer.save_reply(reply, " t0", [_token(0)])
    writer.save_reply(reply, " t0 t1", [_token(1)], end_reason="stop")  # merges with the save that waits
    assert conversation.id is None and len(writer.waiting) == 4
    assert said == [("warning", said[0][1])] and said[0][1].startswith("history paused: database is locked.")
    retries = []
    for step in range(6):  # still locked: each try waits twice as long as the last, up to 30 s
        retries.append(writer.retry_at - now[0])
        now[0] = writer.retry_at
        writer.retry()
    assert retries == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0] and len(said) == 1
    other.execute("COMMIT")
    now[0] = writer.retry_at - 0.1
    writer.retry()  # not yet due: no try
    assert writer.paused is not None
    now[0] = writer.retry_at
    writer.retry()
    assert writer.paused is None and writer.waiting == [] and said[-1] == (
        "information", "history resumed: the 4 writes that waited are saved"
    )
    [done] = [m for m in history.messages(conversation.id) if m.role == "assistant"]
    assert (done.id, done.content, done.end_reason) == (reply.id, " t0 t1", "stop")
    assert history.tokens(reply.id) == [_token(0), _token(1)]


def test_a_full_database_rolls_back_the_write_and_the_next_one_goes_in(tmp_path):
    history = History(tmp_path / DB_NAME)
    pages = history.db.execute("PRAGMA page_count").fetchone()[0]
    history.db.execute(f"PRAGMA max_page_count = {pages}")
    conversation = history.new_conversation("x")
    big = [TokenRow(i, "x" * 2000, i, None, None, None, "low", None) for i in range(20)]
    reply = history.begin_reply(conversation, backend="hf", model="tiny")
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):  # not a failed ROLLBACK's error
        history.save_reply(reply, "x", big)
    assert not history.db.in_transaction and history.tokens(reply) == []  # nothing half-written
    history.db.execute("PRAGMA max_page_count = 1073741823")
    history.save_reply(reply, "x", big)  # the connection is usable: no transaction was left open
    assert len(history.tokens(reply)) == 20


def _chat(history: History, title: str, reply: str) -> int:
    conversation = history.new_conversation(title)
    history.add_message(conversation, "user", title)
    message = history.begin_reply(conversation, backend="hf", model="tiny", gear_mode="auto")
    history.save_reply(message, reply, [_token(0)], end_reason="stop", seconds=1.5, first_token_s=0.25)
    return conversation


def test_search_finds_finished_messages_by_word_prefix_and_forgets_deleted_ones(tmp_path):
    history = History(tmp_path / DB_NAME)
    gears = _chat(history, "How do gears shift?", "Entropy decides the gear.")
    poem = _chat(history, "Write a poem", "Roses are red, weights are int4.")
    streaming = history.begin_reply(poem, backend="hf", model="tiny")
    history.save_reply(streaming, "halfway through entropy", [])  # not finished: not indexed yet
    assert [c.id for c in history.search("entro")] == [gears]
    assert [c.id for c in history.search("ROSES weights")] == [poem]  # every word, any case
    assert history.search('"; DROP TABLE messages; --') == []  # the words are data, never query syntax
    assert [c.id for c in history.search("")] == [poem, gears]
    history.rename_conversation(gears, "  \n  Shifting notes ")
    assert [c.title for c in history.conversations() if c.id == gears] == ["Shifting notes"]
    assert [c.id for c in history.search("shifting")] == [gears]  # the new title is searched too
    history.delete_conversation(gears)
    assert history.search("entropy") == [] and history.messages(gears) == []
    assert history.db.execute("SELECT COUNT(*) FROM tokens").fetchone() == (1,)  # only the poem's trace is left


def test_a_reply_keeps_its_gear_mode_and_timings_and_a_chat_its_settings(tmp_path):
    history = History(tmp_path / DB_NAME)
    conversation = _chat(history, "hi", "hello")
    [_, reply] = history.messages(conversation)
    assert (reply.gear_mode, reply.seconds, reply.first_token_s) == ("auto", 1.5, 0.25)
    assert history.settings(conversation) is None
    history.set_settings(conversation, {"system_prompt": "Be brief.", "temperature": 0.7})
    assert history.settings(conversation) == {"system_prompt": "Be brief.", "temperature": 0.7}


def test_a_version_1_store_is_upgraded_and_its_messages_become_searchable(tmp_path):
    from gearterm.history import SCHEMA

    old = sqlite3.connect(tmp_path / DB_NAME)
    old.executescript(SCHEMA)
    old.executescript(
        "PRAGMA user_version = 1;"
        "INSERT INTO conversations VALUES (1, 'old chat', 0, 0);"
        "INSERT INTO messages (conversation_id, role, content, complete, created_at) VALUES (1, 'user', 'tell me of ships', 1, 0);"
    )
    old.close()
    history = History(tmp_path / DB_NAME)
    assert history.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert [c.title for c in history.search("ships")] == ["old chat"]
    [message] = history.messages(1)
    assert (message.content, message.gear_mode, message.seconds) == ("tell me of ships", None, None)
    history.close()
    assert History(tmp_path / DB_NAME).search("ship")  # opening it again does not migrate twice


def test_a_version_2_store_is_upgraded_and_keeps_a_failed_replys_error(tmp_path):
    from gearterm.history import MIGRATION_2, SCHEMA

    old = sqlite3.connect(tmp_path / DB_NAME)
    old.executescript(SCHEMA + MIGRATION_2)
    old.executescript(
        "PRAGMA user_version = 2;"
        "INSERT INTO conversations VALUES (1, 'old chat', 0, 0, NULL);"
        "INSERT INTO messages (conversation_id, role, content, complete, end_reason, created_at, seconds) "
        "VALUES (1, 'assistant', 'half a reply', 1, 'error', 0, 1.5);"
    )
    old.close()
    history = History(tmp_path / DB_NAME)
    assert history.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    [before] = history.messages(1)
    assert (before.content, before.end_reason, before.seconds, before.error) == ("half a reply", "error", 1.5, None)
    reply = history.begin_reply(1, backend="ollama", model="m")
    history.save_reply(reply, "cut", [_token(0)], end_reason="error", seconds=2.0, error="the server went away")
    history.close()
    [_, failed] = History(tmp_path / DB_NAME).messages(1)
    assert (failed.end_reason, failed.error) == ("error", "the server went away")


def test_a_version_3_stores_tokens_read_as_no_lossless_mode_and_lossless_tokens_keep_their_source(tmp_path):
    from gearterm.history import MIGRATION_2, MIGRATION_3, SCHEMA

    old = sqlite3.connect(tmp_path / DB_NAME)
    old.executescript(SCHEMA + MIGRATION_2 + MIGRATION_3)
    old.executescript(
        "PRAGMA user_version = 3;"
        "INSERT INTO conversations VALUES (1, 'old chat', 0, 0, NULL);"
        "INSERT INTO messages (conversation_id, role, content, complete, created_at) VALUES (1, 'assistant', 'a', 1, 0);"
        "INSERT INTO tokens VALUES (1, 0, 'a', 7, 1.0, NULL, NULL, 'high', 3.0);"
    )
    old.close()
    history = History(tmp_path / DB_NAME)
    [before] = history.tokens(1)
    assert (before.gear, before.kept_from, before.drafted) == ("high", None, None)
    reply = history.begin_reply(1, backend="hf", model="m", gear_mode="lossless")
    verified = [
        TokenRow(0, " a", 5, 0.4, None, None, "low", 1.0, kept_from="draft"),
        TokenRow(1, " b", 6, 2.5, None, None, "high", 1.0, kept_from="high", drafted=3),
    ]
    history.save_reply(reply, " a b", verified, end_reason="stop", seconds=1.0)
    history.close()
    assert History(tmp_path / DB_NAME).tokens(reply) == verified


def test_a_continued_reply_streams_again_and_ends_once_more(tmp_path):
    history = History(tmp_path / DB_NAME)
    conversation = _chat(history, "tell me", "Once upon")
    [_, reply] = history.messages(conversation)
    history.resume_reply(reply.id, gear_mode="auto, then high")
    [_, streaming] = history.messages(conversation)
    assert (streaming.complete, streaming.end_reason, streaming.gear_mode) == (False, None, "auto, then high")
    assert history.search("upon") == []  # a streaming reply is not indexed
    history.save_reply(reply.id, "Once upon a time", [_token(1)], end_reason="length", seconds=3.0, first_token_s=0.5)
    [_, done] = history.messages(conversation)
    assert (done.content, done.complete, done.end_reason, done.seconds) == ("Once upon a time", True, "length", 3.0)
    assert [c.id for c in history.search("time")] == [conversation]
