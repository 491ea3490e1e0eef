"""The activation entropy gate inside Transformers generation, on the real stories260K weights."""

import torch
from torch import nn

from gearterm.backends.base import GenerationParams, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend
from gearterm.backends.hidden_tap import HiddenStateTap
from gearterm.kernels.gate import gate_passed

STORY = [{"role": "user", "content": "Once upon a time"}]


def tokens_of(backend, max_tokens=30):
    params = GenerationParams(max_tokens=max_tokens, gear_mode=GearMode.HIGH)
    return [e for e in backend.generate(STORY, params) if isinstance(e, TokenEvent) and e.token_id is not None]


def test_every_token_carries_survival_for_each_of_the_five_layers(stories_backend):
    tokens = tokens_of(stories_backend)
    assert len(tokens) == 30
    for t in tokens:
        assert isinstance(t.gate_survival, tuple) and len(t.gate_survival) == 5
        assert all(isinstance(passed, bool) for passed in t.gate_survival)


def test_first_token_survival_is_the_gate_over_the_prompts_last_hidden_states(stories_backend, stories_hf):
    """The tap's rows are the layers' outputs at the last prompt position, checked against
    transformers' own output_hidden_states (its last entry is after the final norm)."""
    from transformers import AutoModelForCausalLM

    backend = stories_backend
    first = tokens_of(backend, max_tokens=1)[0]
    ids = torch.tensor([backend.encode_chat(STORY)])
    with torch.inference_mode():
        states = AutoModelForCausalLM.from_pretrained(stories_hf)(input_ids=ids, output_hidden_states=True).hidden_states
    tapped = backend.tap.last_hidden
    torch.testing.assert_close(tapped[:-1], torch.stack([h[0, -1] for h in states[1:-1]]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(backend.model.norm(tapped[-1]), states[-1][0, -1], rtol=1e-5, atol=1e-5)
    assert first.gate_survival == tuple(gate_passed(tapped).tolist())


def test_gate_off_sends_no_survival_and_the_same_tokens(stories_hf, stories_backend):
    off = HFBackend(str(stories_hf), device="cpu", gate=False)
    off.load()
    without = tokens_of(off)
    assert all(t.gate_survival is None for t in without)
    assert [t.token_id for t in without] == [t.token_id for t in tokens_of(stories_backend)]


def test_tap_copies_each_layers_newest_position_until_removed():
    layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
    tap = HiddenStateTap(layers, 4, torch.float32, torch.device("cpu"))
    x = torch.randn(1, 3, 4)
    h0 = layers[0](x)
    h1 = layers[1](h0)
    assert torch.equal(tap.last_hidden, torch.stack([h0[0, -1], h1[0, -1]]).detach())
    tap.remove()
    layers[0](torch.randn(1, 2, 4))
    assert torch.equal(tap.last_hidden[0], h0[0, -1].detach())
