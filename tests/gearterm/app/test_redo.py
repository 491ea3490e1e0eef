"""Regenerate the last reply and edit the last message: each replaces what it redoes, on
screen, in the history (with its token trace) and in what the next request sends."""

from app_helpers import loaded, make_app, say, wait_for

from gearterm.bench.scripted_backend import ScriptedBackend

SIZE = (120, 40)


class Recording(ScriptedBackend):
    """The scripted stand-in, with a new seed each reply (new entropies, so a new trace) and a record of each request."""

    def __init__(self):
        super().__init__(2000.0)
        self.requests: list[list[dict]] = []

    def generate(self, messages, params):
        self.requests.append([dict(m) for m in messages])
        self.seed += 1
        yield from super().generate(messages, params)


def _stored(app):
    return [(m.role, m.content) for m in app.history.messages(app.conversation_id)]


async def test_regenerate_replaces_the_reply_and_its_trace(tmp_path):
    backend = Recording()
    app = make_app(tmp_path, create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "tell me")
        [_, old] = app.history.messages(app.conversation_id)
        old_trace = app.history.tokens(old.id)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.reply is None and len(backend.requests) == 2, "the new reply")
        [user, new] = app.history.messages(app.conversation_id)
        assert user.content == "tell me" and new.end_reason == "length"
        new_trace = app.history.tokens(new.id)
        # The old trace went with the old reply: one reply's rows are left, and they are the new ones.
        assert app.history.db.execute("SELECT COUNT(*) FROM tokens").fetchone() == (len(new_trace),)
        assert len(new_trace) == len(old_trace) and [t.entropy_bits for t in new_trace] != [t.entropy_bits for t in old_trace]
        assert backend.requests[1] == [{"role": "user", "content": "tell me"}]  # not the old reply
        chat = app.chat_screen.chat
        assert [type(e).__name__ for e in chat.entries] == ["UserEntry", "ReplyEntry"]
        assert app.transcript == [{"role": "user", "content": "tell me"}, {"role": "assistant", "content": new.content}]


async def test_edit_last_replaces_the_message_and_its_reply(tmp_path):
    backend = Recording()
    app = make_app(tmp_path, create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "first")
        await say(pilot, app, "secnod")
        await pilot.press("ctrl+l")
        prompt = app.chat_screen.prompt
        assert prompt.text == "secnod" and "editing your last message" in str(prompt.border_title)
        await pilot.press("escape")  # leaves it as it was
        assert prompt.text == "" and prompt.border_title is None and len(_stored(app)) == 4
        await pilot.press("ctrl+l", *["backspace"] * 6, *"second", "enter")
        await wait_for(pilot, lambda: app.reply is None and len(backend.requests) == 3, "the reply to the edit")
        assert [content for role, content in _stored(app) if role == "user"] == ["first", "second"]
        assert len(_stored(app)) == 4 and len(app.chat_screen.chat.entries) == 4
        assert [m["content"] for m in backend.requests[2] if m["role"] == "user"] == ["first", "second"]
        assert prompt.border_title is None


async def test_regenerate_with_nothing_to_redo_says_why(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+r", "ctrl+l")
        assert app.reply is None
        notes = [n.message for n in app._notifications]
        assert "nothing to regenerate yet: send a message first" in notes and "nothing to edit yet: send a message first" in notes
