"""The settings screen (f9): a chat's system prompt and generation settings, kept with it; new
chats start from [generation] in config.toml."""

import math

from app_helpers import loaded, make_app, say, wait_for

from gearterm.app.screens.settings import SettingsScreen
from gearterm.bench.scripted_backend import ScriptedBackend
from gearterm.config import BackendEntry, Config, GenerationConfig, load_config

SIZE = (120, 40)


class Recording(ScriptedBackend):
    def __init__(self):
        super().__init__(2000.0)
        self.requests: list[tuple[list[dict], object]] = []

    def generate(self, messages, params):
        self.requests.append(([dict(m) for m in messages], params))
        yield from super().generate(messages, params)


async def _set(pilot, app, **fields) -> None:
    """Open settings, replace the given fields' text, save."""
    await pilot.press("f9")
    assert isinstance(app.screen, SettingsScreen)
    for name, text in fields.items():
        widget = app.screen.query_one(f"#{name}")
        widget.focus()
        if name == "system_prompt":
            widget.clear()
        else:
            widget.value = ""
        await pilot.press(*text)
    await pilot.press("ctrl+s")


async def test_settings_apply_to_the_chat_are_kept_with_it_and_a_new_chat_starts_from_the_config(tmp_path):
    backend = Recording()
    config = Config(generation=GenerationConfig(max_tokens=24, temperature=0.0))
    app = make_app(tmp_path, config=config, create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await _set(pilot, app, system_prompt="Answer in rhyme.", temperature="0.7", max_tokens="5", seed="42")
        assert not isinstance(app.screen, SettingsScreen)
        await say(pilot, app, "hi")
        messages, params = backend.requests[-1]
        assert messages == [{"role": "system", "content": "Answer in rhyme."}, {"role": "user", "content": "hi"}]
        assert (params.temperature, params.max_tokens, params.seed) == (0.7, 5, 42)
        stored = app.history.settings(app.conversation_id)
        assert stored["system_prompt"] == "Answer in rhyme." and stored["max_tokens"] == 5
        conversation = app.conversation_id

        await pilot.press("f5")
        await say(pilot, app, "plain")
        messages, params = backend.requests[-1]
        assert messages == [{"role": "user", "content": "plain"}] and params.max_tokens == 24 and params.seed is None

        await pilot.press("f6")
        await wait_for(pilot, lambda: getattr(app.screen, "conversations", None), "the list")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.conversation_id == conversation, "the chat to reopen")
        await say(pilot, app, "again")
        messages, params = backend.requests[-1]
        assert messages[0] == {"role": "system", "content": "Answer in rhyme."} and params.temperature == 0.7


async def test_a_wrong_value_is_refused_with_its_reason_and_the_screen_stays(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await _set(pilot, app, temperature="hot", top_p="2")
        assert isinstance(app.screen, SettingsScreen)
        assert "temperature must be a number, not 'hot'" in str(app.screen.query_one("#temperature-hint").render())
        assert "top-p must be a number above 0 and at most 1, not 2.0" in str(app.screen.query_one("#top_p-hint").render())
        await pilot.press("escape")
        assert app.settings == app.config.generation


async def test_gear_thresholds_reach_a_local_backends_policy(tmp_path):
    app = make_app(tmp_path, entry=BackendEntry(label="pocket", backend="hf"), max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await _set(pilot, app, low_below_bits="1", high_above_bits="2.5")
        assert (app.backend.policy.low_below_bits, app.backend.policy.high_above_bits) == (1.0, 2.5)
        scale = math.log2(app.backend.vocab_size) / 15  # the policy scales them to the model's vocabulary
        assert math.isclose(app.readings.low_bits, 1.0 * scale) and math.isclose(app.readings.high_bits, 2.5 * scale)
        await _set(pilot, app, low_below_bits="3", high_above_bits="2")
        assert "low_below_bits (3) must be below high_above_bits (2)" in str(app.screen.query_one("#settings-note").render())


async def test_an_older_chat_is_cut_to_fit_the_context_with_its_system_prompt_kept(tmp_path):
    app = make_app(tmp_path, entry=BackendEntry(label="pocket", backend="hf"), max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        sent, generate = [], app.backend.generate
        app.backend.generate = lambda messages, params: (sent.append(messages), generate(messages, params))[1]
        await _set(pilot, app, context="40", system_prompt="Be kind.")
        for text in ("It was a dark and stormy night, and the rain fell", "The captain looked at the sea", "And then"):
            await say(pilot, app, text)
        assert len(sent[-1]) < 1 + 5  # the system prompt and not every earlier turn
        assert sent[-1][0] == {"role": "system", "content": "Be kind."} and sent[-1][-1]["content"] == "And then"
        assert [m["role"] for m in sent[-1][1:]] == ["user", "assistant"] * (len(sent[-1]) // 2 - 1) + ["user"]
        assert any("messages were left out of this reply's prompt to fit the 40-token context" in n.message for n in app._notifications)


async def test_the_configs_context_sizes_the_models_cache_and_the_status_bar_shows_it(tmp_path):
    config = Config(generation=GenerationConfig(context=128))
    app = make_app(tmp_path, entry=BackendEntry(label="pocket", backend="hf"), config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert app.backend.max_positions == app.backend.model.positions == 128
        assert "· context 128 ·" in str(app.chat_screen.status.render())


def test_generation_settings_are_read_from_the_config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[generation]\nsystem_prompt = "Be brief."\ncontext = 2048\nlow_below_bits = 2.0\nhigh_above_bits = 1.0\n')
    config, problems = load_config(path)
    assert (config.generation.system_prompt, config.generation.context) == ("Be brief.", 2048)
    assert (config.generation.low_below_bits, config.generation.high_above_bits) == (1.8, 3.5)  # refused together
    assert [p.message for p in problems] == [
        "generation: low_below_bits (2) must be below high_above_bits (1); using the default thresholds"
    ]


async def test_lossless_drafting_is_set_for_the_chat_and_a_gear_that_is_not_one_is_refused(tmp_path):
    backend = Recording()
    app = make_app(tmp_path, create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await _set(pilot, app, lossless_draft="sideways")
        assert isinstance(app.screen, SettingsScreen)
        hint = str(app.screen.query_one("#lossless_draft-hint").render())
        assert "lossless draft must be one of low, mid, auto, not 'sideways'" in hint
        await pilot.press("escape")
        await _set(pilot, app, lossless_draft="auto", lossless_max_draft="3")
        await say(pilot, app, "hi")
        params = backend.requests[-1][1]
        assert (params.lossless_draft, params.lossless_max_draft) == (None, 3)  # None: chosen by measured cost
        assert app.history.settings(app.conversation_id)["lossless_draft"] == "auto"


async def test_tab_walks_the_fields_at_80x24_and_the_last_ones_scroll_into_view(tmp_path):
    """The chat's keys are off while the settings are open; tab and shift+tab are not."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("f9")
        await pilot.press("tab")
        assert app.screen.focused.id == "temperature"
        await pilot.press("shift+tab")
        assert app.screen.focused.id == "system_prompt"
        for _ in range(9):
            await pilot.press("tab")
        await pilot.pause()
        assert app.screen.focused.id == "lossless_max_draft"
        fields = app.screen.query_one("#settings-fields")
        assert fields.scroll_y > 0 and app.screen.focused.region.bottom <= fields.region.bottom
