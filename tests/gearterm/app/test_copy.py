"""Copy (f7): the last reply, one code block of a reply, or any message, picked from a list."""

import re

from app_helpers import loaded, make_app, say

from gearterm.app.screens.copy_picker import CopyPicker, copyables
from gearterm.bench.scripted_backend import ScriptedBackend

SIZE = (120, 40)
REPLY = "Try this:\n\n```python\nprint('low gear')\n```\n\nor in a shell:\n\n```\necho mid\n```\n\nDone."


def test_choices_put_the_last_reply_first_then_code_blocks_and_messages_newest_first():
    choices = copyables([("user", "first"), ("assistant", REPLY), ("user", "second"), ("assistant", "short")])
    assert [(c.what, c.text) for c in choices] == [
        ("reply", "short"),
        ("your message", "second"),
        ("code (no language)", "echo mid\n"),
        ("code (python)", "print('low gear')\n"),
        ("reply", REPLY),
        ("your message", "first"),
    ]


async def test_f7_copies_a_chosen_code_block_or_message(tmp_path):
    backend = ScriptedBackend(2000.0)
    backend.words = re.findall(r"\s*\S+", REPLY)  # the whole reply, word by word
    app = make_app(tmp_path, max_tokens=len(backend.words), create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "how do I print?")
        assert app.transcript[-1]["content"] == REPLY
        await pilot.press("f7")
        assert isinstance(app.screen, CopyPicker)
        await pilot.press("down", "enter")  # the newest code block first: the shell one
        assert app.clipboard == "echo mid\n"
        await pilot.press("f7", "down", "down", "enter")
        assert app.clipboard == "print('low gear')\n"
        await pilot.press("f7", "end", "enter")
        assert app.clipboard == "how do I print?"
