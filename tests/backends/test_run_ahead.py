"""The generation loop's run-ahead order (next step launched before the token is handed over),
which the GPU path takes because its steps are queued graph launches. Here it runs on the CPU
decoder of the real stories260K weights, which computes each step before returning: what is
tested is the loop's order and outcome (tokens, gears, reasons, steps taken), not the overlap."""

import pytest

from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend

PROMPT = [1, 403, 407, 261, 378]  # BOS "Once upon a time" in stories260K's vocabulary


class CountingBackend(HFBackend):
    run_ahead = False
    steps = 0

    def _steps_run_ahead(self) -> bool:
        return self.run_ahead

    def _step(self) -> None:
        self.steps += 1
        super()._step()


@pytest.fixture(scope="module")
def backend(stories_hf):
    backend = CountingBackend(str(stories_hf), device="cpu")
    backend.load()
    return backend


def reply(backend, run_ahead: bool, max_tokens=60, mode=GearMode.AUTO, cancel_after=None):
    backend.run_ahead, backend.steps = run_ahead, 0
    backend._cancel.clear()
    tokens, done = [], None
    for event in backend._generate(PROMPT, GenerationParams(max_tokens=max_tokens, gear_mode=mode)):
        if isinstance(event, TokenEvent) and event.is_token:
            tokens.append(event)
            if len(tokens) == cancel_after:
                backend.cancel()
        elif isinstance(event, ReplyDone):
            done = event
    return tokens, done


def test_run_ahead_gives_the_same_tokens_gears_and_steps(backend):
    plain, plain_done = reply(backend, run_ahead=False)
    ahead, ahead_done = reply(backend, run_ahead=True)
    assert [(t.token_id, t.gear, t.next_gear) for t in ahead] == [(t.token_id, t.gear, t.next_gear) for t in plain]
    assert len({t.gear for t in ahead}) > 1  # auto mode shifted: the step launched early used the new gear
    assert ahead_done.reason == plain_done.reason == "length" and ahead_done.tokens == 60
    assert backend.steps == 59  # no step launched past the last token


def test_run_ahead_stops_at_end_of_sequence_without_another_step(backend):
    plain, _ = reply(backend, run_ahead=False, max_tokens=30)
    eos = plain[9].token_id
    first = next(i for i, t in enumerate(plain) if t.token_id == eos)
    backend.eos_ids = {eos}
    try:
        tokens, done = reply(backend, run_ahead=True, max_tokens=30)
    finally:
        backend.eos_ids = set(backend._eos_ids())
    assert done.reason == "stop" and len(tokens) == first + 1
    assert backend.steps == first


def test_run_ahead_cancel_while_the_caller_holds_a_token(backend):
    tokens, done = reply(backend, run_ahead=True, max_tokens=100, cancel_after=5)
    assert done.reason == "cancelled" and len(tokens) == 5 and done.tokens == 5
    again, done = reply(backend, run_ahead=True, max_tokens=5)  # the next reply starts clean
    assert done.reason == "length" and len(again) == 5
