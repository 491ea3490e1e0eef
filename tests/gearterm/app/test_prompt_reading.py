"""While a long prompt is read, the reply says how far: "reading the prompt: 64 of 380 tokens",
under its heading until its first token (a long paste on a CPU is a minute of waiting).
The real pocket model; the prompt is read 64 positions a call so that a paste of a few hundred
tokens takes several."""

from app_helpers import loaded, make_app, wait_for
from textual import events

from gearterm.app.widgets.chat_log import ChatLog
from gearterm.backends import geared_generation
from gearterm.config import BackendEntry


async def test_the_reply_says_how_much_of_a_long_prompt_was_read_until_its_text_comes(tmp_path, monkeypatch):
    monkeypatch.setattr(geared_generation, "PROMPT_STEP", 64)
    shown: list[tuple[str, str]] = []  # (the note, the reply's text when it was drawn)
    note = ChatLog.note

    def spy(chat, reply, line):
        shown.append((line, reply.text))
        note(chat, reply, line)

    monkeypatch.setattr(ChatLog, "note", spy)
    app = make_app(tmp_path, entry=BackendEntry(label="pocket", backend="hf"), max_tokens=8)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        prompt = app.chat_screen.prompt
        prompt.focus()
        prompt.post_message(events.Paste("The fox counted the boats on the river. " * 40))
        await wait_for(pilot, lambda: prompt.text, "the paste")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.transcript) == 2 and app.reply is None, "the reply", timeout=60)
        reply = app.chat_screen.chat.replies[-1]
        assert shown, "no note while the prompt was read"
        total = int(shown[0][0].split(" of ")[1].split()[0].replace(",", ""))
        assert total > 300
        assert [line.split(",")[0] for line, _ in shown] == [
            f"reading the prompt: {n} of {total} tokens" for n in range(64, total, 64)
        ]
        assert all(line.endswith("tokens/s so far") and text == "" for line, text in shown)
        # Once the text came, the line under the reply is the reply's own.
        assert reply.text and "reading the prompt" not in reply.meta and "tokens" in reply.meta
