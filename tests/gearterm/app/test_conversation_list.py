"""The conversation list (f6): search titles and messages (SQLite FTS5), rename, delete."""

from app_helpers import loaded, make_app, say, wait_for

from gearterm.app.screens.conversations import ConversationList

SIZE = (120, 40)


async def _three_chats(pilot, app) -> list[int]:
    ids = []
    for text in ("gears and entropy", "a poem about the sea", "tell me of ships"):
        await say(pilot, app, text)
        ids.append(app.conversation_id)
        await pilot.press("f5")
    return ids


async def test_typing_searches_and_enter_opens_what_was_found(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        gears, poem, ships = await _three_chats(pilot, app)
        await pilot.press("f6")
        assert isinstance(app.screen, ConversationList)
        assert [c.id for c in app.screen.conversations] == [ships, poem, gears]
        await pilot.press(*"SEA")
        assert [c.id for c in app.screen.conversations] == [poem]
        await pilot.press(*["backspace"] * 3, *"shifting")  # a word of the scripted replies: all three hold it
        assert len(app.screen.conversations) == 3
        await pilot.press(*["backspace"] * 8, *"zebra")
        assert app.screen.conversations == []
        assert "nothing holds 'zebra'" in str(app.screen.query_one("#conversation-where").render())
        await pilot.press(*["backspace"] * 5, *"entro", "enter")
        await wait_for(pilot, lambda: app.conversation_id == gears, "the chat to open")


async def test_f2_renames_and_f8_twice_deletes(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        gears, poem, ships = await _three_chats(pilot, app)
        await pilot.press("f6", "down", "f2")  # the poem
        title = app.screen.query_one("#conversation-title")
        assert title.has_focus and title.value == "a poem about the sea"
        title.value = ""
        await pilot.press(*"Sea poem", "enter")
        assert [c.title for c in app.history.conversations() if c.id == poem] == ["Sea poem"]
        assert app.screen.query_one("#conversation-search").has_focus
        await pilot.press("f8")
        assert app.history.messages(poem)  # the first press only asks
        assert "f8 again deletes 'Sea poem'" in str(app.screen.query_one("#conversation-hint").render())
        await pilot.press("f8")
        assert app.history.messages(poem) == [] and [c.id for c in app.screen.conversations] == [ships, gears]
        assert app.history.search("poem") == []


async def test_deleting_the_open_chat_starts_a_new_one(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "only chat")
        await pilot.press("f6", "f8", "f8", "escape")
        assert app.conversation_id is None and app.chat_screen.chat.entries == [] and app.transcript == []
        assert app.history.conversations() == []
