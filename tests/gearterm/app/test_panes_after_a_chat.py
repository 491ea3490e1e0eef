"""The panes tell the truth about the chat on screen (issue 18, fix 8): a new chat starts from
the default thresholds, a forced mode names the gear the next reply will use, and a reopened
chat shows its stored trace and the line under each reply, as it did when it streamed."""

from app_helpers import loaded, make_app, say, wait_for

from gearterm.backends.base import TokenEvent
from gearterm.bench.scripted_backend import ScriptedBackend

SIZE = (120, 40)


class Calibrating(ScriptedBackend):
    """The scripted stand-in, whose tokens carry thresholds calibrated to the prompt (as local backends' do)."""

    def generate(self, messages, params):
        for event in super().generate(messages, params):
            if isinstance(event, TokenEvent):
                event.thresholds_bits = (0.9, 2.9)
            yield event


def _label(app) -> str:
    return str(app.chat_screen.query_one("#gear-label").render())


async def test_a_new_chat_starts_from_the_default_thresholds(tmp_path):
    app = make_app(tmp_path, create_backend=lambda entry, config: Calibrating(2000.0))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        defaults = (app.readings.low_bits, app.readings.high_bits)
        await say(pilot, app, "hi")
        assert (app.readings.low_bits, app.readings.high_bits) == (0.9, 2.9)
        await pilot.press("f5")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert (app.readings.low_bits, app.readings.high_bits) == defaults
        assert "(defaults)" in str(app.chat_screen.query_one("#entropy-figures").render())


async def test_a_forced_mode_names_the_gear_of_the_next_reply(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        assert "next reply: policy picks" in _label(app)
        await pilot.press("f3", "f3")  # low, then mid
        assert "next reply: mid (forced)" in _label(app) and "next: " not in _label(app)


async def test_a_reopened_chat_shows_its_trace_and_reply_lines(tmp_path):
    app = make_app(tmp_path, max_tokens=30)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "first")
        await say(pilot, app, "second")
        conversation = app.conversation_id
        lines = [r.meta for r in app.chat_screen.chat.replies]
        entropy = list(app.readings.entropy)
        gears = dict(app.readings.session_gears)
        assert lines[-1].startswith("30 tokens · ") and " tok/s · auto mode · low " in lines[-1]
        assert lines[-1].endswith(" · length")
        await pilot.press("f5")
        assert not app.readings.entropy
        await pilot.press("f6")
        await wait_for(pilot, lambda: getattr(app.screen, "conversations", None), "the list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation_id == conversation, "the chat to reopen")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert [r.meta for r in app.chat_screen.chat.replies] == lines
        assert list(app.readings.entropy) == entropy and dict(app.readings.session_gears) == gears
        assert app.readings.gear is not None
        assert "no tokens" not in str(app.chat_screen.query_one("#gear-mix").render())
        assert "30 tokens" in str(app.chat_screen.query_one("#speed").render())
        assert "not stored" in str(app.chat_screen.query_one("#gate-figures").render())
