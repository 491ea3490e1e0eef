"""What the main screen looks like at 80x24 and 160x45, idle and mid-reply (pytest-textual-snapshot).

The reply comes from the scripted stand-in backend (seeded entropies, a reply held after a
set number of tokens) and events are stamped by a fake clock, so every figure on screen is
the same on every run; the cursor does not blink. Update with `pytest --snapshot-update`,
after looking at the new SVGs."""

import itertools

import pytest
from app_helpers import loaded, make_app, say, wait_for

SIZES = {"80x24": (80, 24), "160x45": (160, 45)}


def fake_clock(step: float = 0.004):
    """Each call is `step` seconds after the last: a stream of exactly 1 / step tokens/s."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_idle(snap_compare, tmp_path, size):
    app = make_app(tmp_path, clock=fake_clock())

    async def ready(pilot):
        await loaded(pilot, app)
        app.chat_screen.prompt.cursor_blink = False

    assert snap_compare(app, terminal_size=SIZES[size], run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_mid_reply(snap_compare, tmp_path, size):
    app = make_app(tmp_path, hold_after=160, max_tokens=400, clock=fake_clock())

    async def mid_reply(pilot):
        await loaded(pilot, app)
        app.chat_screen.prompt.cursor_blink = False
        await pilot.press(*"How do gears work?", "enter")
        await wait_for(pilot, lambda: app.readings.reply_tokens == 160, "160 tokens")
        await wait_for(pilot, lambda: app.events.empty() and not app.panes_stale, "the screen to catch up")
        await pilot.press(*"and why")  # a prompt being typed while the reply streams

    assert snap_compare(app, terminal_size=SIZES[size], run_before=mid_reply)


def test_gear_pane_shows_lossless_acceptance_and_speed_beside_forced_high(snap_compare, tmp_path):
    """A forced-high reply, then a lossless one: the pane shows the share of drafts kept, the
    tokens per verify pass and the speed ratio (the scripted backend's, 1.00x on the fake clock)."""
    from gearterm.backends.gearbox import GearMode

    app = make_app(tmp_path, max_tokens=40, clock=fake_clock())

    async def two_replies(pilot):
        await loaded(pilot, app)
        app.chat_screen.prompt.cursor_blink = False
        app.gear_mode = GearMode.HIGH
        await say(pilot, app, "High first.")
        app.gear_mode = GearMode.LOSSLESS
        await say(pilot, app, "Now lossless.")
        assert app.readings.session_verify.passes > 0

    assert snap_compare(app, terminal_size=SIZES["160x45"], run_before=two_replies)
