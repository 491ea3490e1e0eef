"""The gear pane and strip name a precision only for the model that made the token: a chat
reopened from another backend or model, or the last reply before a switch, shows its high gear
without bits (a chat answered by a llama.cpp server's f16 model read "gear 32-bit high" on the
pocket model's float32 weights)."""

import sqlite3

from app_helpers import SCRIPTED, loaded, make_app, say, wait_for

from gearterm.config import BackendEntry, Config, GenerationConfig, UIConfig

SMALL = (80, 24)


def _strip(app) -> str:
    return str(app.chat_screen.query_one("#strip").render())


async def test_a_reopened_chat_of_another_model_shows_its_high_gear_without_bits_until_the_next_reply(tmp_path):
    config = Config(gear="high", generation=GenerationConfig(max_tokens=8), ui=UIConfig(export_dir=str(tmp_path / "x")))
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        assert _strip(app).startswith("gear 16-bit high"), _strip(app)
        ours = app.conversation_id
        await say(pilot, app, "and again")
        await pilot.press("f5")
        await say(pilot, app, "a chat of another model")
        theirs = app.conversation_id
        with sqlite3.connect(app.history.path) as db:
            db.execute("UPDATE messages SET model = 'llama3.1:8b-instruct-fp16' WHERE conversation_id = ?", (theirs,))
        app._open_conversation(theirs)
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert _strip(app).startswith("gear high (another model's)"), _strip(app)
        app._open_conversation(ours)  # this model's own: the bits are known
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert _strip(app).startswith("gear 16-bit high"), _strip(app)
        app._open_conversation(theirs)
        await say(pilot, app, "now from this model")  # a token of this model: its bits again
        assert _strip(app).startswith("gear 16-bit high"), _strip(app)


async def test_after_a_switch_the_last_reply_of_the_model_before_is_shown_without_bits(tmp_path):
    other = BackendEntry(label="another scripted model", backend="scripted")
    config = Config(gear="high", generation=GenerationConfig(max_tokens=8), ui=UIConfig(export_dir=str(tmp_path / "x")))
    app = make_app(tmp_path, config=config, discover=lambda config: ([SCRIPTED, other], []))
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        assert _strip(app).startswith("gear 16-bit high"), _strip(app)
        app.load_backend(other)
        await wait_for(pilot, lambda: app.entry == other and app.loading_entry is None, "the switch")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert _strip(app).startswith("gear high (another model's)"), _strip(app)
        await say(pilot, app, "and from this one")
        assert _strip(app).startswith("gear 16-bit high"), _strip(app)
