"""Export (f8): private files in a known folder, the paths said, nothing overwritten (issue 18, fix 7)."""

import stat

from app_helpers import loaded, make_app, say

from gearterm.config import Config, GenerationConfig

SIZE = (120, 40)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_export_goes_beside_the_history_is_private_and_never_overwrites(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("GEARTERM_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)  # where `make run` would have left the user: not where exports go
    app = make_app(tmp_path, config=Config(generation=GenerationConfig(max_tokens=6)))  # export_dir not set
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hello")
        await pilot.press("f8")
        exports = data / "exports"
        first = exports / f"gearterm-{app.conversation_id}.md"
        first_trace = exports / f"gearterm-{app.conversation_id}-tokens.jsonl"
        assert first.is_file() and first_trace.is_file()
        assert not list(tmp_path.glob("gearterm-*"))  # nothing in the current directory
        assert _mode(first) == _mode(first_trace) == 0o600 and _mode(exports) == 0o700
        said = [n.message for n in app._notifications if n.title == "exported to"]
        assert said == [f"{first}\n{first_trace}"]
        first_text = first.read_text()
        assert f"_{app.chat_screen.chat.replies[-1].meta}_" in first_text  # the line under the reply, as on screen
        assert " tok/s · auto mode · low " in first_text
        await say(pilot, app, "again")
        await pilot.press("f8")
        second = exports / f"gearterm-{app.conversation_id}-2.md"
        assert second.is_file() and (exports / f"gearterm-{app.conversation_id}-2-tokens.jsonl").is_file()
        assert first.read_text() == first_text and "again" in second.read_text()
        assert _mode(second) == 0o600
