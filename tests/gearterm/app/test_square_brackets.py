"""Text in square brackets is shown as it is, not read as Rich markup (issue 18, fix 4): the
help note, a config notice, a model name and messages in the chat."""

from app_helpers import loaded, make_app, say, wait_for
from textual.widgets import Static
from textual.widgets._toast import Toast

from gearterm.config import load_config

SIZE = (120, 40)


async def test_the_help_note_names_the_keymap_table(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        note = str(app.screen.query_one(".modal-note", Static).render())
        assert "[keymap]" in note and 'cycle_gear = "' in note


async def test_a_config_notice_keeps_its_brackets(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[keymap]\nnot_a_key = "f9"\n')
    config, problems = load_config(path)
    app = make_app(tmp_path, config=config, notes=[("error", str(p)) for p in problems])
    async with app.run_test(size=SIZE, notifications=True) as pilot:  # drawn as toasts, as in a terminal
        await wait_for(pilot, lambda: app.screen.query(Toast), "the notice")
        shown = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert any("unknown binding id 'not_a_key' in [keymap] (known:" in text for text in shown), shown


async def test_brackets_in_messages_and_model_names_are_drawn(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "what does [b]bold[/b] do in [keymap]?")
        chat_text = "\n".join(line.text for line in app.chat_screen.chat._lines)
        assert "what does [b]bold[/b] do in [keymap]?" in chat_text
        app.chat_screen.status.show_backend("hf", "models/[v2]-tiny", "cpu", "512", None, None)
        await pilot.pause()
        assert "models/[v2]-tiny" in str(app.chat_screen.status.render())
        app.chat_screen.status.show_no_model("no weights in [model dir]", "f2")
        await pilot.pause()
        assert "no weights in [model dir]" in str(app.chat_screen.status.render())
