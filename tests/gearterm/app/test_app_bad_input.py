"""Bad input never takes the app down: a broken config file, an unwritable data dir and a model
that fails to load each give a readable message, and the app goes on working."""

from app_helpers import SCRIPTED, HeldLoad, loaded, make_app, say, wait_for

from gearterm.cli import main as cli_main
from gearterm.config import BackendEntry, load_config
from gearterm.history import open_history


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_config_problems_are_shown_in_the_app_and_it_still_replies(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[generation]\nmax_tokens = "lots"\n')
    config, problems = load_config(path)
    app = make_app(tmp_path, config=config, notes=[("error", str(p)) for p in problems])
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        assert any(f"{path}:2: generation.max_tokens must be an integer" in n for n in _notes(app))
        await say(pilot, app, "hello")
        assert app.transcript[-1]["role"] == "assistant"


async def test_a_syntax_error_is_shown_with_its_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("model = \n")
    config, problems = load_config(path)
    app = make_app(tmp_path, config=config, notes=[("error", str(p)) for p in problems])
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        assert any(n.startswith(f"{path}:1: TOML syntax error") for n in _notes(app))


async def test_an_unwritable_data_dir_keeps_history_in_memory_and_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    history, problem = open_history(blocker / "data")
    app = make_app(tmp_path, notes=[("warning", problem)], history=history)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        assert any("history is not being saved" in n for n in _notes(app))
        await say(pilot, app, "hello")
        await pilot.press("f6")
        assert "in memory only" in app.screen.where and len(app.screen.conversations) == 1


async def test_a_model_that_fails_to_load_is_explained_and_another_can_be_picked(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # no weights
    entry = BackendEntry(label="broken", backend="hf", model=str(broken))
    app = make_app(tmp_path, entry=entry, discover=lambda config: ([entry, SCRIPTED], []))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.load_error is not None, "the load to fail")
        # Textual adds a notification when its message is handled, which may be after this.
        await wait_for(pilot, lambda: any("holds no weights" in n for n in _notes(app)), "the reason shown")
        assert "no model" in str(app.chat_screen.status.render())
        await pilot.press(*"hi", "enter")  # refused with a reason, nothing crashes
        assert app.reply is None and any("f2 picks a backend" in n for n in _notes(app))
        assert app.chat_screen.prompt.text == "hi"  # kept for when a model is there
        app.chat_screen.prompt.clear()
        await pilot.press("f2")
        await wait_for(pilot, lambda: getattr(app.screen, "entries", None), "the picker's list")
        await pilot.press("down", "enter")
        await loaded(pilot, app)
        await say(pilot, app, "now")
        assert app.transcript[-1]["role"] == "assistant"


def test_a_missing_config_file_or_unknown_backend_stops_the_cli_with_a_message(tmp_path, capsys):
    assert cli_main(["--config", str(tmp_path / "absent.toml")]) == 2
    assert f"no config file at {tmp_path / 'absent.toml'}" in capsys.readouterr().err
    assert cli_main(["--backend", "nope"]) == 2
    assert capsys.readouterr().err == "gearterm: error: --backend must be one of hf, mlx, ollama, openai, not 'nope'\n"


def test_a_bad_flag_is_one_line(capsys):
    assert cli_main(["--gear", "turbo"]) == 2
    assert capsys.readouterr().err == "gearterm: error: --gear must be one of auto, low, mid, high, lossless, not 'turbo'\n"
    assert cli_main(["--temperature", "warm"]) == 2
    assert capsys.readouterr().err == (
        "gearterm: error: argument --temperature: invalid float value: 'warm' (gearterm --help lists the options)\n"
    )


async def test_a_backend_that_fails_mid_reply_ends_the_reply_with_the_error(tmp_path):
    """A stand-in backend that raises after three tokens: the worker failure is handled in one place."""
    from gearterm.bench.scripted_backend import ScriptedBackend

    class Failing(ScriptedBackend):
        def generate(self, messages, params):
            for i, event in enumerate(super().generate(messages, params)):
                if i == 3:
                    raise RuntimeError("the GPU fell off the bus")
                yield event

    app = make_app(tmp_path, create_backend=lambda entry, config: Failing(2000))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hello")
        [_, reply] = app.history.messages(app.conversation_id)
        assert (reply.complete, reply.end_reason) == (True, "error")
        assert len(app.history.tokens(reply.id)) == 3
        # Said once, under the reply (not a second time in a notification).
        assert app.chat_screen.chat.replies[-1].meta.endswith("error — RuntimeError: the GPU fell off the bus")
        await say(pilot, app, "again")  # the app goes on
        assert app.reply is None


async def test_loading_shows_progress_and_keys_still_work(tmp_path):
    from gearterm.bench.scripted_backend import ScriptedBackend

    app = make_app(tmp_path, create_backend=lambda entry, config: ScriptedBackend(2000, load_seconds=1.5))
    async with app.run_test(size=(120, 40)) as pilot:
        bar = app.chat_screen.loading
        await wait_for(pilot, lambda: bar.display and bar.query_one("ProgressBar").progress > 0, "load progress")
        await pilot.press("f3")  # the UI answers while the model loads
        assert app.gear_mode.value == "low" and app.backend is None
        await loaded(pilot, app)
        assert not bar.display


async def test_a_long_load_step_is_shown_whole_at_80_columns(tmp_path):
    """What loads and the bar take one row; the step goes under them, whole (the line was one
    row high and showed "loading hf:" and nothing else)."""
    import threading

    from textual.widgets import Label

    step = "compiling the CPU gear kernel (once per machine, about a minute; cached after)"  # longer than a row
    go_on = threading.Event()
    app = make_app(tmp_path, create_backend=lambda entry, config: HeldLoad(go_on, step))
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.chat_screen.loading
        shown = bar.query_one("#loading-step", Label)
        await wait_for(pilot, lambda: step in str(shown.render()), "the long step")
        await pilot.pause()
        rows = [shown.render_line(y).text.strip() for y in range(shown.size.height)]
        what = bar.query_one("#loading-what", Label).render_line(0).text.strip()
        height = bar.size.height  # rows past the bar's own are cut off
        go_on.set()
        assert what == "loading scripted stand-in"
        assert " ".join(rows) == step and height == 1 + len(rows), (rows, height)
        await loaded(pilot, app)


def test_the_loading_line_names_a_model_on_disk_by_its_name(tmp_path):
    """The status bar shows the whole path; the loading line keeps its room for the step."""
    from gearterm.app.backend_choices import loading_title, startup_entry
    from gearterm.config import Config

    model = tmp_path / "deep" / "dir" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    model.parent.mkdir(parents=True)
    model.touch()
    assert loading_title(startup_entry(Config(model=str(model)))) == "hf: SmolLM2-135M-Instruct.Q4_1.gguf"
    # A Hugging Face id (not a path here), the pocket model and a configured label stay as they are.
    assert loading_title(startup_entry(Config(model="HuggingFaceTB/SmolLM2-135M-Instruct"))) == "hf: HuggingFaceTB/SmolLM2-135M-Instruct"
    assert loading_title(startup_entry(Config())) == "hf: pocket model (packaged)"
    assert loading_title(BackendEntry(label="work box", backend="hf", model=str(model))) == "work box"


async def test_a_flood_of_typed_keys_fills_the_prompt_and_the_rest_is_refused_once(tmp_path):
    """100,000 key events posted at once, as a terminal delivers a paste without bracketed paste."""
    import resource

    from textual import events

    from gearterm.app.widgets.prompt import PROMPT_CHARS_UNKNOWN

    app = make_app(tmp_path)
    said, notify = [], app.notify  # every notice, also one that expired before the end of a slow run
    app.notify = lambda message, **options: (said.append(message), notify(message, **options))[1]
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        prompt = app.chat_screen.prompt
        prompt.focus()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i in range(100_000):
            app.post_message(events.Key("abcdefghij"[i % 10], "abcdefghij"[i % 10]))
        await pilot.press("enter")  # handled after every key before it
        await wait_for(pilot, lambda: app.reply is None and len(app.transcript) == 2, "the reply to the full prompt")
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert app.transcript[0]["content"] == "abcdefghij" * (PROMPT_CHARS_UNKNOWN // 10)  # no context known
        assert [n for n in said if "prompt holds at most" in n] == [
            "the prompt holds at most 32,000 characters (the model's context is not known here): what was typed "
            "or pasted past that was dropped"
        ]
        assert grown_mb < 500  # 0.7 -> 5 GB before the limit
        await pilot.press(*"short", "enter")  # the prompt takes input again
        await wait_for(pilot, lambda: len(app.transcript) == 4, "the next reply")


async def test_the_prompt_takes_a_paste_as_long_as_the_models_context_and_says_where_it_stopped(tmp_path):
    """The real pocket model holds 2,048 tokens: the prompt takes about 4 characters a token."""
    from textual import events

    app = make_app(tmp_path, entry=BackendEntry(label="pocket", backend="hf"))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        prompt = app.chat_screen.prompt
        prompt.focus()
        prompt.post_message(events.Paste("It was a dark and stormy night.\n" * 400))  # 12,800 characters
        await wait_for(pilot, lambda: prompt.text, "the paste")
        assert len(prompt.text) == 4 * app.backend.max_positions == 8192
        await wait_for(pilot, lambda: any("prompt holds at most 8,192" in n for n in _notes(app)), "the notice")
        assert any("(about the model's 2,048-token context)" in n for n in _notes(app))
