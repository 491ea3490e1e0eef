"""A message sent while the model loads waits in the prompt and goes once the model is ready;
escape keeps it unsent, an edit leaves it to the user, and a failed load keeps it in the prompt."""

import threading

from app_helpers import HeldLoad, make_app, wait_for


async def type_and_send(pilot, app, text):
    app.chat_screen.prompt.focus()
    await pilot.press(*text, "enter")


async def test_a_message_sent_during_the_load_goes_when_the_model_is_ready(tmp_path):
    release = threading.Event()
    app = make_app(tmp_path, create_backend=lambda entry, config: HeldLoad(release))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.loading.display, "the load")
        await type_and_send(pilot, app, "hello")
        prompt = app.chat_screen.prompt
        assert prompt.text == "hello" and "sends when the model has loaded" in str(prompt.border_title)
        assert app.transcript == []
        release.set()
        await wait_for(pilot, lambda: {"role": "user", "content": "hello"} in app.transcript, "the waiting message")
        await wait_for(pilot, lambda: app.reply is None, "its reply")
        assert prompt.text == "" and prompt.border_title is None
        assert app.transcript[-1]["role"] == "assistant"


async def test_escape_keeps_it_unsent_and_an_edit_is_the_users_to_send(tmp_path):
    for edit in (False, True):
        release = threading.Event()
        (tmp_path / str(edit)).mkdir()
        app = make_app(tmp_path / str(edit), create_backend=lambda entry, config: HeldLoad(release))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.chat_screen.loading.display, "the load")
            await type_and_send(pilot, app, "hello")
            if edit:
                await pilot.press("!")  # typed after sending: the prompt no longer holds what was sent
            else:
                await pilot.press("escape")
                assert app.chat_screen.prompt.border_title is None
            release.set()
            await wait_for(pilot, lambda: app.backend is not None, "the model")
            await pilot.pause()
            assert app.transcript == [] and app.chat_screen.prompt.text == ("hello!" if edit else "hello")
            assert app.waiting_text is None and app.chat_screen.prompt.border_title is None


async def test_a_failed_load_keeps_the_message_in_the_prompt(tmp_path):
    release = threading.Event()
    app = make_app(tmp_path, create_backend=lambda entry, config: HeldLoad(release, fail=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.loading.display, "the load")
        await type_and_send(pilot, app, "hello")
        release.set()
        await wait_for(pilot, lambda: app.load_error is not None, "the failure")
        prompt = app.chat_screen.prompt
        assert prompt.text == "hello" and prompt.border_title is None and app.waiting_text is None
        said = []
        app.notify = lambda message, **options: said.append(message)
        await pilot.press("enter")  # with no model coming, sending says why
        assert any("the weights are not there" in m for m in said) and app.transcript == []
