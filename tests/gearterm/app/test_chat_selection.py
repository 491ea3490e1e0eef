"""Selecting reply text with the mouse, then resizing the terminal (issue 18, fix 1)."""

from app_helpers import loaded, make_app, say

SIZE = (120, 40)


async def test_resizing_after_a_mouse_selection_keeps_the_app_running(tmp_path):
    app = make_app(tmp_path, max_tokens=6)  # a short reply: the selected lines stay in view after the resize
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        chat = app.chat_screen.chat
        await pilot.mouse_down(chat, offset=(40, 3))
        await pilot.hover(chat, offset=(60, 8))
        await pilot.mouse_up(chat, offset=(60, 8))
        assert chat in app.screen.selections
        await pilot.resize_terminal(60, 30)  # the lines wrap again, narrower than where the selection started
        await pilot.pause()
        assert app.is_running
        # The selection marked text that has moved: it is dropped, not drawn over other words.
        assert chat not in app.screen.selections
        await pilot.mouse_down(chat, offset=(2, 1))  # and selecting works again at the new width
        await pilot.mouse_up(chat, offset=(8, 1))
        assert app.screen.get_selected_text()
