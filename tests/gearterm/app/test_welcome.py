"""The welcome view on an empty chat: the model, what each pane shows, the keys that matter, and
on the pocket model what it can and cannot do (issue 18: welcome view; fix 11 in part)."""

from app_helpers import loaded, make_app, say

from gearterm.config import BackendEntry

SIZE = (80, 24)


def _welcome(app) -> str:
    """The welcome's text as drawn at its width, lines joined."""
    welcome = app.chat_screen.welcome
    lines = app.console.render_lines(welcome.content, app.console.options.update_width(welcome.size.width))
    return " ".join(" ".join("".join(segment.text for segment in line).split()) for line in lines)


async def test_an_empty_chat_shows_the_welcome_until_the_first_message(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        text = _welcome(app)
        assert "replies come from scripted-2000-tokens-per-s on scripted (cpu)" in text
        for pane in ("Entropy", "Gear", "Gate", "Power", "Speed"):
            assert f"{pane} " in text
        assert "enter send · ctrl+j new line · escape stop a reply · f3 gear mode · f1 every key" in text
        assert "pocket model" not in text
        assert app.chat_screen.query_one("#welcome-scroll").display and not app.chat_screen.chat.display
        await say(pilot, app, "hi")
        assert app.chat_screen.chat.display and not app.chat_screen.query_one("#welcome-scroll").display
        await pilot.press("f5")
        assert app.chat_screen.query_one("#welcome-scroll").display


async def test_on_the_pocket_model_the_welcome_says_what_it_can_and_cannot_do(tmp_path):
    app = make_app(tmp_path, entry=BackendEntry(label="pocket", backend="hf"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        text = _welcome(app)
        assert "It is gearterm's pocket model" in text and "knows no facts" in text
        assert f"Its context is {app.backend.max_positions:,} tokens" in text and "f2 picks another model" in text
