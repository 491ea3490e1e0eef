"""Every key binding of the app, pressed through Pilot, does what the help screen says.

The backend is the scripted stand-in (gearterm/bench/scripted_backend.py): these tests are
about the keys, and a held reply ("mid-reply") needs a backend that can wait on cue.
Backend switching with a real model is in test_app_switch_real.py.
"""

import json

from app_helpers import SCRIPTED, loaded, make_app, say, wait_for
from textual.widgets import OptionList

from gearterm.backends.gearbox import GearMode
from gearterm.app.keys import KEYS
from gearterm.app.screens.backend_picker import BackendPicker
from gearterm.app.screens.conversations import ConversationList
from gearterm.app.screens.help import HelpScreen
from gearterm.config import BackendEntry, Config, GenerationConfig
from gearterm.kernels.gear import Gear

SIZE = (120, 40)


async def start_reply_held_after_five_tokens(pilot, app) -> None:
    """For an app made with hold_after=5: send a message and wait for the reply to stall."""
    await loaded(pilot, app)
    await pilot.press(*"go", "enter")
    await wait_for(pilot, lambda: app.readings.reply_tokens == 5, "five tokens")


def test_every_binding_has_an_id_an_action_and_a_distinct_key():
    ids = [k.id for k in KEYS]
    assert len(ids) == len(set(ids))
    first_keys = [k.keys.split(",")[0] for k in KEYS]
    assert len(first_keys) == len(set(first_keys))
    keys = {key for k in KEYS for key in k.keys.split(",")}
    assert not {"ctrl+b", "ctrl+a"} & keys  # tmux and screen prefixes
    assert all(len(key) > 1 and key != "question_mark" for key in keys)  # no letter: a letter is typing
    from gearterm.app.app import GeartermApp

    for key in KEYS:
        assert callable(getattr(GeartermApp, f"action_{key.action}")), key


async def test_f1_shows_every_key_and_escape_closes(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert {k.id for k in KEYS} <= {binding_id for _, binding_id, _ in app.screen.rows}
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_f3_cycles_the_gear_mode_into_the_next_reply(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert app.gear_mode is GearMode.AUTO
        await pilot.press("f3")
        assert app.gear_mode is GearMode.LOW
        assert "mode low, forced" in str(app.chat_screen.query_one("#gear-label").render())
        await say(pilot, app, "hi")
        assert set(app.readings.reply_gears) == {Gear.LOW}  # forced low all along
        for expected in (GearMode.MID, GearMode.HIGH, GearMode.LOSSLESS, GearMode.AUTO):
            await pilot.press("f3")
            assert app.gear_mode is expected
            if expected is GearMode.LOSSLESS:  # the speed ratio needs both modes' replies first
                label = str(app.chat_screen.query_one("#gear-label").render())
                assert "vs high n/a: run high and lossless" in label


async def test_escape_cancels_a_streaming_reply(tmp_path):
    app = make_app(tmp_path, hold_after=5)
    async with app.run_test(size=SIZE) as pilot:
        await start_reply_held_after_five_tokens(pilot, app)
        message_id = app.reply.message.id
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.reply is None, "the reply to stop")
        [saved] = [m for m in app.history.messages(app.conversation_id) if m.id == message_id]
        assert (saved.complete, saved.end_reason) == (True, "cancelled")
        assert len(app.history.tokens(message_id)) == 5


async def test_f4_tints_reply_tokens_by_gear(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        chat = app.chat_screen.chat
        plain = [line.text for line in chat._lines]
        await pilot.press("f4")
        assert app.gear_tint and chat.tinted
        tinted_colors = {seg.style.color.name for line in chat._lines for seg in line if seg.style and seg.style.color}
        assert {"#5fd787", "#ffd75f", "#ff875f"} & tinted_colors  # the gear colours
        assert any("tint: low mid high" in line.text for line in chat._lines)  # with their legend
        await pilot.press("f4")
        assert not app.gear_tint and [line.text for line in chat._lines] == plain


async def test_f5_starts_a_new_chat_and_the_old_one_stays_saved(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "first")
        old = app.conversation_id
        await pilot.press("f5")
        assert app.conversation_id is None and app.transcript == [] and app.chat_screen.chat.entries == []
        assert app.readings.session_gears == {}
        await say(pilot, app, "second")
        assert app.conversation_id != old
        assert [m.content for m in app.history.messages(old)][0] == "first"


async def test_f6_lists_conversations_and_opens_one(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "alpha")
        first = app.conversation_id
        reply = app.transcript[-1]["content"]
        await pilot.press("f5")
        await say(pilot, app, "beta")
        await pilot.press("f6")
        assert isinstance(app.screen, ConversationList)
        assert [c.title for c in app.screen.conversations] == ["beta", "alpha"]  # newest first
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.conversation_id == first, "the older conversation to open")
        assert app.transcript == [{"role": "user", "content": "alpha"}, {"role": "assistant", "content": reply}]
        assert app.chat_screen.chat.replies[-1].text == reply


async def test_f7_copies_the_last_reply(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("f7")  # nothing yet: a warning, no crash
        await say(pilot, app, "hi")
        await pilot.press("f7", "enter")  # the last reply is the first choice
        assert app.clipboard == app.transcript[-1]["content"] != ""


async def test_f8_exports_markdown_and_the_token_trace(tmp_path):
    app = make_app(tmp_path, max_tokens=10)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hello there")
        await pilot.press("f8")
        exports = tmp_path / "exports"
        markdown = (exports / f"gearterm-{app.conversation_id}.md").read_text()
        assert "hello there" in markdown and app.transcript[-1]["content"].strip() in markdown
        rows = [json.loads(line) for line in (exports / f"gearterm-{app.conversation_id}-tokens.jsonl").open()]
        assert len(rows) == 10
        assert [r["position"] for r in rows] == list(range(10))
        assert "".join(r["text"] for r in rows) == app.transcript[-1]["content"]
        assert all(r["gear"] in {"low", "mid", "high"} and r["entropy_bits"] >= 0 for r in rows)


async def test_f2_picks_another_backend_and_the_chat_stays(tmp_path):
    other = BackendEntry(label="second scripted", backend="scripted", model="other")
    usual = BackendEntry(label="scripted: third", backend="scripted", model="third")
    app = make_app(tmp_path, discover=lambda config: ([SCRIPTED, other, usual], []))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "before")
        first_backend = app.backend
        await pilot.press("f2")
        assert isinstance(app.screen, BackendPicker)
        await wait_for(pilot, lambda: app.screen.entries, "the picker's list")
        shown = [str(o.prompt) for o in app.screen.query_one(OptionList).options]
        # A label the config named gets its backend and model beneath; "backend: model" says them once.
        assert shown == [f"{SCRIPTED.label} (in use)\nscripted · no model named", "second scripted\nscripted · other", "scripted: third"]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.entry == other and app.backend is not first_backend, "the switch")
        assert len(app.transcript) == 2 and len(app.chat_screen.chat.entries) == 2


async def test_ctrl_q_quits(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
    assert app.return_code == 0 and not app.is_running


async def test_keys_are_remapped_from_the_config(tmp_path):
    config = Config(generation=GenerationConfig(max_tokens=4), keymap={"cycle_gear": "f9"})
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        assert app.gear_mode is GearMode.AUTO
        await pilot.press("f9")
        assert app.gear_mode is GearMode.LOW
        await pilot.press("f1")
        assert ("f9", "cycle_gear") in {(keys, binding_id) for keys, binding_id, _ in app.screen.rows}


async def test_every_binding_is_a_palette_command(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE):
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {k.title for k in KEYS} <= titles


async def test_chat_keys_are_inert_under_a_modal_screen(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.press("f3")
        assert app.gear_mode is GearMode.AUTO and isinstance(app.screen, HelpScreen)


async def test_f3_during_a_reply_says_the_new_mode_waits_for_the_next_reply(tmp_path):
    app = make_app(tmp_path, hold_after=5)
    async with app.run_test(size=SIZE) as pilot:
        await start_reply_held_after_five_tokens(pilot, app)
        await pilot.press("f3")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert "next reply; now auto" in str(app.chat_screen.query_one("#gear-label").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.reply is None, "the reply to stop")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        label = str(app.chat_screen.query_one("#gear-label").render())
        assert "now auto" not in label and "next reply: low (forced)" in label
