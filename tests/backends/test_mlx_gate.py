"""The activation entropy gate inside MLX generation (real mlx[cpu], mlx-lm, stories260K)."""

import pytest
import torch

mx = pytest.importorskip("mlx.core", reason="mlx is not importable here: install gearterm[mlx]")
pytest.importorskip("mlx_lm", reason="mlx-lm is not importable here: install gearterm[mlx]")
nn = pytest.importorskip("mlx.nn")

from gearterm.backends.base import GenerationParams, TokenEvent  # noqa: E402
from gearterm.backends.gearbox import GearMode  # noqa: E402
from gearterm.backends.mlx import MLXBackend  # noqa: E402
from gearterm.backends.mlx_hidden_tap import MLXHiddenStateTap  # noqa: E402
from gearterm.kernels.gate import gate_passed  # noqa: E402

STORY = [{"role": "user", "content": "Once upon a time"}]


@pytest.fixture(scope="module")
def backend(stories_hf) -> MLXBackend:
    b = MLXBackend(str(stories_hf))
    b.load()
    return b


def tokens_of(backend, max_tokens=100):
    params = GenerationParams(max_tokens=max_tokens, gear_mode=GearMode.HIGH)
    return [e for e in backend.generate(STORY, params) if isinstance(e, TokenEvent) and e.token_id is not None]


def transformers_layer_outputs(model, ids: list[int]) -> torch.Tensor:
    """[positions, layers, d]: every decoder layer's output at every position, from one
    Transformers forward pass over the whole sequence (its own hooks, not the backend's tap)."""
    outputs = []
    handles = [
        layer.register_forward_hook(lambda m, args, out: outputs.append(out[0] if isinstance(out, tuple) else out))
        for layer in model.model.layers
    ]
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([h[0] for h in outputs], dim=1)


def test_every_token_carries_the_gate_over_transformers_hidden_states(backend, stories_hf):
    """Each token's survival is gate_passed on the layer outputs of the pass that produced
    it; the same layers run by Transformers over the prompt and the generated tokens."""
    tokens = tokens_of(backend)
    assert backend.capabilities.hidden_states
    assert len(tokens) == 100
    for t in tokens:
        assert isinstance(t.gate_survival, tuple) and len(t.gate_survival) == 5
        assert all(isinstance(passed, bool) for passed in t.gate_survival)
    prompt = backend.encode_chat(STORY)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(stories_hf)
    hidden = transformers_layer_outputs(model, prompt + [t.token_id for t in tokens])
    # The pass whose newest position is prompt position len(prompt) - 1 + i produced token i.
    expected = [tuple(gate_passed(hidden[len(prompt) - 1 + i]).tolist()) for i in range(len(tokens))]
    assert [t.gate_survival for t in tokens] == expected
    # The story's layers neither all pass nor all fail: the comparison can tell them apart.
    assert 0 < sum(map(sum, expected)) < 5 * len(tokens)


def test_the_tap_rows_are_each_layers_output_run_layer_by_layer(backend):
    """The first token's rows (from the prompt's pass) against the model's own layers
    called one after another on the prompt, without a cache."""
    ids = backend.encode_chat(STORY)
    backend.tap.recording = True
    try:
        backend.model(mx.array([ids]))
        tapped = backend.tap.take()
    finally:
        backend.tap.recording = False
    inner = backend.model.model
    h, rows = inner.embed_tokens(mx.array([ids])), []
    for layer in inner.layers:
        h = layer(h, "causal")
        rows.append(h[0, -1])
    assert mx.array_equal(tapped, mx.stack(rows))
    first = tokens_of(backend, max_tokens=1)[0]
    assert first.gate_survival == tuple(gate_passed(torch.tensor(tapped.tolist())).tolist())


def test_gate_off_captures_nothing_and_sends_the_same_tokens(stories_hf, backend):
    off = MLXBackend(str(stories_hf), gate=False)
    off.load()
    assert off.tap is None and not off.capabilities.hidden_states
    assert all(type(layer).__name__ == "TransformerBlock" for layer in off.model.layers)
    without = tokens_of(off, max_tokens=30)
    assert all(t.gate_survival is None for t in without)
    assert [t.token_id for t in without] == [t.token_id for t in tokens_of(backend, max_tokens=30)]


def test_teacher_forcing_records_nothing(backend):
    backend.teacher_force(backend.encode_text("Once upon a time, there was a cat."), GearMode.HIGH)
    assert all(row is None for row in backend.tap.rows)


def test_tap_keeps_each_layers_newest_row_and_the_layers_attributes_until_removed():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.use_sliding = False  # models read such attributes off their layers

        def __call__(self, x, mask=None):
            return self.proj(x)

    layers = [Block(), Block()]
    tap = MLXHiddenStateTap(layers)
    x = mx.random.normal((1, 3, 4), key=mx.random.key(0))
    layers[1](layers[0](x))
    assert all(row is None for row in tap.rows)  # not recording yet
    tap.recording = True
    h0 = layers[0](x)
    h1 = layers[1](h0, None)
    assert mx.array_equal(tap.take(), mx.stack([h0[0, -1], h1[0, -1]]))
    assert all(row is None for row in tap.rows)  # take() lets the outputs go
    with pytest.raises(RuntimeError, match="no rows"):
        tap.take()
    assert layers[0].use_sliding is False and "proj" in layers[0]
    tap.remove()
    assert type(layers[0]) is Block and not hasattr(layers[0], "_hidden_tap")
    layers[0](x)
    assert tap.rows == []
