"""Run by test_app_durability.py as a process of its own, to be killed with SIGKILL mid-reply.

The app runs headless on the scripted stand-in backend (a stream that can be held on cue):
one reply streams to the end, a second is held after 10 tokens; once those are saved it
prints MID-REPLY and waits for the kill."""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[3]))  # this checkout's gearterm, not an installed one

from app_helpers import loaded, make_app, say, wait_for  # noqa: E402


async def main(data: Path) -> None:
    app = make_app(data, max_tokens=20)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "first question")
        app.backend.hold_after = 10
        await pilot.press(*"second question", "enter")
        await wait_for(pilot, lambda: app.reply is not None, "the second reply")
        message_id = app.reply.message.id
        await wait_for(pilot, lambda: len(app.history.tokens(message_id)) == 10, "ten saved tokens")
        print("MID-REPLY", message_id, flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
