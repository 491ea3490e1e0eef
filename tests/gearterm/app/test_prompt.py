"""The prompt: several lines, pastes kept whole, earlier messages recalled across sessions, and
letters typed anywhere are text, never commands (issue 18, fixes 2 and 3)."""

from app_helpers import loaded, make_app, wait_for
from textual import events

from gearterm.backends.gearbox import GearMode
from gearterm.app.screens.conversations import ConversationList
from gearterm.history import History

SIZE = (120, 40)
SEVEN_LINES = "def gear(bits):\n    if bits < 8:\n        return 'low'\n    if bits < 16:\n        return 'mid'\n    return 'high'\n# end"


async def sent(pilot, app, count: int) -> None:
    await wait_for(pilot, lambda: len(app.transcript) == 2 * count and app.reply is None, f"reply {count}")


async def test_a_pasted_block_of_seven_lines_is_sent_whole(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        app.chat_screen.prompt.post_message(events.Paste(SEVEN_LINES))
        await pilot.pause()
        assert app.chat_screen.prompt.text == SEVEN_LINES
        await pilot.press("enter")
        await sent(pilot, app, 1)
        assert app.transcript[0] == {"role": "user", "content": SEVEN_LINES}
        assert app.chat_screen.chat.entries[0].text == SEVEN_LINES
        assert app.history.messages(app.conversation_id)[0].content == SEVEN_LINES


async def test_ctrl_j_starts_a_new_line_and_enter_sends(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press(*"first", "ctrl+j", *"second")
        assert app.chat_screen.prompt.text == "first\nsecond" and app.reply is None
        await pilot.press("enter")
        await sent(pilot, app, 1)
        assert app.transcript[0]["content"] == "first\nsecond" and app.chat_screen.prompt.text == ""


async def test_up_recalls_earlier_messages_also_from_an_earlier_session(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        for i, text in enumerate(("older", "newer"), start=1):
            await pilot.press(*text, "enter")
            await sent(pilot, app, i)

    again = make_app(tmp_path, history=History(tmp_path / "history.sqlite3"))  # the next session, same store
    async with again.run_test(size=SIZE) as pilot:
        await loaded(pilot, again)
        prompt = again.chat_screen.prompt
        await pilot.press(*"draft")
        await pilot.press("up")
        assert prompt.text == "newer"
        await pilot.press("up")
        assert prompt.text == "older"
        await pilot.press("down", "down")
        assert prompt.text == "draft"  # what was being written comes back
        await pilot.press("up", "enter")
        await sent(pilot, again, 1)
        assert again.transcript[0]["content"] == "newer"


async def test_letters_typed_after_clicking_the_chat_are_text_never_commands(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press(*"hi", "enter")
        await sent(pilot, app, 1)
        conversation = app.conversation_id
        await pilot.click("#chat")
        chat = app.chat_screen.chat
        assert chat.has_focus and chat.styles.border_left[0] == "outer"  # focus is drawn: a bar at its edge
        await pilot.press(*"elngbtc?")  # once export, list, new chat, gear mode, backend, tint, copy, help
        prompt = app.chat_screen.prompt
        assert prompt.has_focus and prompt.text == "elngbtc?"
        assert chat.styles.border_left[0] != "outer"
        assert app.screen is app.chat_screen and not isinstance(app.screen, ConversationList)
        assert app.gear_mode is GearMode.AUTO and not app.gear_tint and app.conversation_id == conversation
        assert not (tmp_path / "exports").exists()


async def test_keys_that_arrive_in_a_burst_edit_in_the_order_they_were_typed(tmp_path):
    """All posted at once, as tmux's send-keys or a fast typist delivers them: backspace once
    ran only after the letters behind it, and "hello wor⌫⌫rld!" read "hello worrl"."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        for key in [*"hello wor", "backspace", "backspace", *"rld!", "left", "left", "?"]:
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await wait_for(pilot, lambda: len(app.chat_screen.prompt.text) == 12, "the keys")
        assert app.chat_screen.prompt.text == "hello wrl?d!"
