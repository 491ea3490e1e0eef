"""A reply that fails before any text leaves its message out of the next request, and its
error is said once, under the reply (issue 18, fix 6), where a reopened chat says it again."""

from app_helpers import loaded, make_app, say, wait_for

from gearterm.backends.base import BackendError
from gearterm.bench.scripted_backend import ScriptedBackend

SIZE = (120, 40)
FAULT = "the server went away (stand-in fault)"


class FailsFirst(ScriptedBackend):
    """The scripted stand-in whose first reply fails before any token; it keeps every request."""

    def __init__(self):
        super().__init__(2000.0)
        self.requests: list[list[dict]] = []

    def generate(self, messages, params):
        self.requests.append([dict(m) for m in messages])
        if len(self.requests) == 1:
            raise BackendError(FAULT)
        yield from super().generate(messages, params)


async def test_the_next_request_alternates_roles_and_the_error_is_said_once(tmp_path):
    backend = FailsFirst()
    app = make_app(tmp_path, create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press(*"first", "enter")
        await wait_for(pilot, lambda: app.reply is None and len(backend.requests) == 1, "the failed reply")
        failed_line = app.chat_screen.chat.replies[-1].meta
        assert failed_line.endswith(f"error — {FAULT}")
        assert not [n for n in app._notifications if FAULT in n.message]  # not a second time in a toast
        await say(pilot, app, "second")
        assert backend.requests[1] == [{"role": "user", "content": "second"}]
        await say(pilot, app, "third")
        assert [m["role"] for m in backend.requests[2]] == ["user", "assistant", "user"]
        conversation = app.conversation_id
        await pilot.press("f5", "f6")
        await wait_for(pilot, lambda: getattr(app.screen, "conversations", None), "the list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation_id == conversation, "the chat to reopen")
        assert [m["content"] for m in app.transcript if m["role"] == "user"] == ["second", "third"]
        assert [type(e).__name__ for e in app.chat_screen.chat.entries][:2] == ["UserEntry", "ReplyEntry"]  # all shown
        assert app.chat_screen.chat.replies[0].meta == failed_line  # the error line, as the live chat said it
