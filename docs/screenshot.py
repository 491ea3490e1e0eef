"""Regenerate docs/screenshot.svg: the app on the packaged pocket model (Transformers backend,
this machine's CPU), after a three-turn chat. Run from the repository root:

    .venv/bin/python docs/screenshot.py
"""

import asyncio
import tempfile
import time
from pathlib import Path

from gearterm.app.app import GeartermApp
from gearterm.app.backend_choices import startup_entry
from gearterm.config import Config, GenerationConfig
from gearterm.history import open_history
from gearterm.telemetry.power import PowerMeter

OUT = Path(__file__).with_name("screenshot.svg")
PROMPTS = ("What did you see upon the sea?", "Tell me a story of the king and his daughter.", "Who art thou?")


async def main() -> None:
    config = Config(generation=GenerationConfig(max_tokens=400))  # greedy
    with tempfile.TemporaryDirectory() as data, PowerMeter() as meter:
        history, _ = open_history(Path(data))
        app = GeartermApp(config, startup_entry(config), history, power=meter)
        async with app.run_test(size=(130, 40)) as pilot:
            while app.backend is None:
                await pilot.pause(0.1)
            app.chat_screen.prompt.cursor_blink = False
            for turn, prompt in enumerate(PROMPTS, 1):
                await pilot.press(*prompt, "enter")
                deadline = time.monotonic() + 120
                while (app.reply is not None or len(app.transcript) < 2 * turn) and time.monotonic() < deadline:
                    await pilot.pause(0.05)
            await pilot.pause(0.5)  # the panes redraw a few times a second
            app.save_screenshot(str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
