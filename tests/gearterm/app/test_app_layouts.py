"""A streamed write, a typed letter and a gear mode change redraw what changed without laying
out the whole screen again.

A layout pass re-measures every widget, and the frame after it waits for that; one per chat
write and per key press is what held keys behind a 500 tokens/s stream (`gearterm bench ui`
times that). Here the layouts are counted, not timed: Textual posts a Layout message to the
screen for every widget that asks for one."""

from collections import Counter

from app_helpers import loaded, make_app, wait_for
from textual import messages

from gearterm.backends.gearbox import GearMode

SIZE = (120, 40)
HELD_AT = 2000  # tokens: dozens of chat writes, well past one screen of text


async def test_streaming_and_keys_lay_out_only_what_changed_size(tmp_path):
    app = make_app(tmp_path, hold_after=HELD_AT, max_tokens=HELD_AT + 100)
    layouts: Counter[str] = Counter()

    def count_layouts(message) -> None:
        if isinstance(message, messages.Layout):
            layouts[message.widget.id or type(message.widget).__name__] += 1

    async with app.run_test(size=SIZE, message_hook=count_layouts) as pilot:
        await loaded(pilot, app)
        await pilot.press(*"tell me", "enter")
        # Counted from the first token on: the first message swaps the welcome view for the chat, once a chat.
        await wait_for(pilot, lambda: app.readings.reply_tokens > 0, "the first token")
        await pilot.pause()
        layouts.clear()
        await wait_for(pilot, lambda: app.readings.reply_tokens == HELD_AT, f"{HELD_AT} tokens")
        await wait_for(pilot, lambda: app.events.empty() and not app.panes_stale, "the screen to catch up")
        chat = app.chat_screen.chat
        assert chat.show_vertical_scrollbar and chat.scroll_y == chat.max_scroll_y > 0  # it streamed past a screen
        await pilot.press(*"abc", "f3", "f3")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert app.chat_screen.prompt.text == "abc" and app.gear_mode is GearMode.MID
        assert "next reply; now auto" in str(app.chat_screen.query_one("#gear-label").render())

    assert layouts["chat"] <= 1, layouts  # once at most: when its scrollbar appeared
    assert layouts["prompt"] == 0, layouts
    assert layouts["gear-bits"] == layouts["gear-label"] == layouts["gear"] == 0, layouts
