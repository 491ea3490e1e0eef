"""Keys remapped in [keymap] are named where the app names a key, and two bindings that want
one key are reported, with which one got it (issue 18, fix 5)."""

from app_helpers import loaded, make_app

from gearterm.app.keys import resolve_keymap
from gearterm.backends.gearbox import GearMode
from gearterm.config import Config, GenerationConfig

SIZE = (120, 40)


def keymapped(**keymap) -> Config:
    return Config(generation=GenerationConfig(max_tokens=4), keymap=keymap)


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_the_gear_pane_names_the_remapped_key(tmp_path):
    app = make_app(tmp_path, config=keymapped(cycle_gear="f12"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        label = str(app.chat_screen.query_one("#gear-label").render())
        assert "(f12 cycles)" in label and "f3" not in label
        assert "f1 keys" in str(app.chat_screen.prompt.placeholder)


async def test_a_key_taken_from_a_default_binding_is_reported(tmp_path):
    app = make_app(tmp_path, config=keymapped(cycle_gear="f5"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert "f5 now runs cycle_gear ([keymap]); new_chat is left with no key (ctrl+p still runs it)" in _notes(app)
        await pilot.press("f5")
        assert app.gear_mode is GearMode.LOW and app.chat_screen.chat.entries == []
        await pilot.press("f1")
        keys_by_id = {binding_id: keys for keys, binding_id, _ in app.screen.rows}
        assert keys_by_id["new_chat"] == "no key: ctrl+p" and keys_by_id["cycle_gear"] == "f5"


async def test_two_bindings_set_to_one_key_keep_it_for_the_first_and_say_so(tmp_path):
    app = make_app(tmp_path, config=keymapped(cycle_gear="f12", toggle_tint="f12"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert "f12 is set for both cycle_gear and toggle_tint in [keymap]: it stays with cycle_gear" in _notes(app)
        assert "toggle_tint keeps f4" in _notes(app)
        await pilot.press("f12")
        assert app.gear_mode is GearMode.LOW and not app.gear_tint
        await pilot.press("f4")
        assert app.gear_tint


def test_an_untouched_keymap_has_no_clash():
    keymap, notes = resolve_keymap({})
    assert notes == [] and keymap["cycle_gear"] == "f3"
