"""The loading bar's seconds: a load step can hold the bar still for a long while (a GGUF's
weights, 12-19 s for SmolLM2 on two cores), and the seconds beside it show the load is alive."""

import asyncio
import threading

from textual.widgets import Label

from app_helpers import HeldLoad, loaded, make_app, wait_for


async def test_the_seconds_go_on_while_a_step_holds_the_bar_still_and_stop_with_the_load(tmp_path):
    release = threading.Event()
    app = make_app(tmp_path, create_backend=lambda entry, config: HeldLoad(release))
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.chat_screen.loading
        what, seconds = bar.query_one("#loading-what", Label), bar.query_one("#loading-seconds", Label)
        await wait_for(pilot, lambda: str(seconds.render()).strip() == "2 s", "two seconds of the held step")
        assert bar.query_one("#loading-progress").percentage == 0.45  # the step's, held
        # On the bar's row, inside 80 columns, after what loads.
        assert seconds.region.y == what.region.y and what.region.right <= seconds.region.x
        assert seconds.region.right <= 80 and str(what.render()) == "loading scripted stand-in"
        release.set()
        await loaded(pilot, app)
        shown = str(seconds.render())
        await asyncio.sleep(1.5)
        await pilot.pause()
        assert not bar.display and str(seconds.render()) == shown  # no more ticks once the model is ready
