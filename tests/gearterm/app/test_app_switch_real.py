"""The app on a real local backend: the Transformers backend on a tiny random Llama
(tests/conftest.py builds it), switched to mid-conversation, its replies saved with their trace."""

import math
import sqlite3
import stat

from app_helpers import SCRIPTED, loaded, make_app, say, wait_for

from gearterm.backends.hf import HFBackend
from gearterm.config import BackendEntry


async def test_switch_to_transformers_mid_conversation_and_the_reply_is_saved_with_its_trace(tmp_path, tiny_llama_dir):
    hf = BackendEntry(label="tiny llama", backend="hf", model=str(tiny_llama_dir))
    app = make_app(tmp_path, discover=lambda config: ([SCRIPTED, hf], []), max_tokens=12)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "Once upon a time")
        await pilot.press("f2")
        await wait_for(pilot, lambda: getattr(app.screen, "entries", None), "the picker's list")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.backend, HFBackend) and app.loading_entry is None, "the model")
        assert "hf" in str(app.chat_screen.status.render()) and "cpu" in str(app.chat_screen.status.render())
        await say(pilot, app, "there was")

        # The conversation carried over: the Transformers backend was asked with all four turns.
        assert [m["role"] for m in app.transcript] == ["user", "assistant", "user", "assistant"]
        assert app.readings.capabilities.vocab_size == app.backend.vocab_size
        conversation = app.conversation_id
        replies = [m for m in app.history.messages(conversation) if m.role == "assistant"]
        assert [(m.backend, m.complete) for m in replies] == [("scripted", True), ("hf", True)]
        hf_reply = replies[1]
        assert hf_reply.end_reason in {"stop", "length"} and hf_reply.content == app.transcript[-1]["content"]

    # After the app has gone: a fresh connection sees the reply and its per-token trace.
    db_path = tmp_path / "history.sqlite3"
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    db = sqlite3.connect(db_path)
    rows = db.execute(
        "SELECT position, text, token_id, entropy_bits, gear FROM tokens WHERE message_id = ? ORDER BY position",
        (hf_reply.id,),
    ).fetchall()
    assert [r[0] for r in rows] == list(range(len(rows))) and 1 <= len(rows) <= 13
    assert "".join(r[1] for r in rows) == hf_reply.content
    measured = [r for r in rows if r[2] is not None]  # a detokenizer's flushed tail has no forward pass
    assert measured and all(0 <= r[3] <= math.log2(app.backend.vocab_size) + 1e-6 for r in measured)
    assert {r[4] for r in rows} <= {"low", "mid", "high"}
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
