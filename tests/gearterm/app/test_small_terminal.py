"""The app at 80x24 (issue 18, fix 10): the side panes give way to a one-line strip of their
figures, the chat keeps the width, and the help screen wraps instead of cutting its text."""

import re

from app_helpers import loaded, make_app, say, wait_for

from gearterm.app.keys import KEYS
from gearterm.app.screens.help import PROMPT_KEYS

SMALL, LARGE = (80, 24), (160, 45)


async def test_at_80_columns_a_strip_replaces_the_panes_and_the_chat_keeps_the_width(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot, app)
        screen = app.chat_screen
        assert not screen.query_one("#panes").display or not screen.panes_shown
        assert screen.query_one("#strip").region.height == 1
        await say(pilot, app, "hi")
        assert screen.chat.size.width >= 70  # was 33 beside 44 columns of panes
        await wait_for(pilot, lambda: not app.panes_stale, "the figures")
        strip = str(screen.query_one("#strip").render())
        assert re.match(r"gear \d+-bit (low|mid|high), mode auto · entropy \d+\.\d\d bits · \d+\.\d tok/s · power (n/a|\d+ W)$", strip), strip
        await pilot.resize_terminal(*LARGE)
        assert screen.panes_shown and screen.query_one("#panes").region.width == 44
        assert screen.query_one("#strip").region.height == 0
        assert "no tokens" not in str(screen.query_one("#gear-mix").render())  # caught up with what streamed meanwhile


async def test_the_panes_key_hides_and_shows_them_at_any_width(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=LARGE) as pilot:
        await loaded(pilot, app)
        screen = app.chat_screen
        assert screen.panes_shown
        await pilot.press("ctrl+o")
        assert not screen.panes_shown and screen.query_one("#strip").region.height == 1
        await pilot.press("ctrl+o")
        assert screen.panes_shown


async def test_help_at_80x24_wraps_every_line_instead_of_cutting_it(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f1")
        body = app.screen.query_one("#help-body")
        assert body.region.right <= SMALL[0]
        lines = app.console.render_lines(body.content, app.console.options.update_width(body.size.width))
        text = " ".join("".join(segment.text for segment in line) for line in lines)
        words = " ".join(text.split())
        for key in KEYS:
            assert " ".join(key.help.split()) in words, key.help
        for _, what in PROMPT_KEYS:
            assert what in words
        await pilot.press("end")  # the note at the end scrolls into view
        assert app.screen.query_one(".modal-note").region.bottom <= SMALL[1]


async def test_a_narrow_status_bar_leaves_out_whole_fields_memory_then_the_servers_url_never_the_meter_cut(tmp_path):
    """At 80 columns a server's URL pushed the context meter off the line part way: "context 74"
    of "context 74 of 4,096 used" (seen against a llama.cpp server)."""
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot, app)
        status = app.chat_screen.status
        status.show_backend("openai", "SmolLM2-135M-Instruct.Q4_1.gguf", "http://127.0.0.1:8089", "74 of 4,096 used", None, None)
        await pilot.pause()
        line = str(status.render())
        assert line == "openai · SmolLM2-135M-Instruct.Q4_1.gguf · context 74 of 4,096 used", line
        await pilot.resize_terminal(*LARGE)
        await pilot.pause()
        line = str(status.render())
        assert "· http://127.0.0.1:8089 · context 74 of 4,096 used · memory n/a" in line, line
        await pilot.resize_terminal(*SMALL)
        await pilot.pause()
        assert "http" not in str(status.render()) and len(str(status.render())) <= 78


async def test_a_narrow_strip_leaves_out_whole_figures_from_its_end(tmp_path):
    """At 80 columns the strip read "... · power n/a: NVML", the reason cut part way (and in lossless
    mode "... · power n/a:"): the reason is left out whole, then figures from the end."""
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot, app)
        for _ in range(4):
            await pilot.press("f3")
        strip = app.chat_screen.query_one("#strip")
        await wait_for(pilot, lambda: "mode lossless" in str(strip.render()), "the mode in the strip")
        power = "power n/a" if strip.power.watts is None else f"{strip.power.watts:.0f} W"  # a GPU here reads watts
        assert str(strip.render()) == f"gear n/a: no tokens yet, mode lossless · entropy n/a · tok/s n/a · {power}"
        await pilot.resize_terminal(60, 24)
        await pilot.pause()
        assert str(strip.render()) == "gear n/a: no tokens yet, mode lossless · entropy n/a"
        await pilot.press("ctrl+o")  # the panes hidden at a large size: the strip has room for all
        await pilot.resize_terminal(*LARGE)
        await pilot.pause()
        await pilot.pause()
        whole = "power n/a: " + strip.power.note if strip.power.watts is None else power
        assert str(strip.render()).endswith(f" · tok/s n/a · {whole}")
