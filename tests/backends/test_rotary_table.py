"""gearterm.backends.rotary_table on the real stories260K model: the lookup returns exactly what the
rotary module computes, and the model's logits do not change."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from gearterm.backends.rotary_table import tabulate_rotary


@pytest.fixture
def model(stories_hf):
    return AutoModelForCausalLM.from_pretrained(stories_hf, dtype=torch.float32).eval()


def test_lookup_is_bit_identical_to_the_module(model):
    rotary = model.model.rotary_emb
    x = torch.empty(0)
    ids = torch.tensor([[0, 5, 17, 255, 3]])
    before = rotary(x, ids)
    assert tabulate_rotary(model, 256)
    after = rotary(x, ids)
    assert all(torch.equal(a, b) and a.shape == b.shape for a, b in zip(before, after))


def test_logits_unchanged(model):
    ids = torch.tensor([[1, 403, 407, 261, 378, 289]])
    with torch.no_grad():
        before = model(ids).logits
        assert tabulate_rotary(model, 64)
        after = model(ids).logits
    assert torch.equal(before, after)


def test_sequence_dependent_rope_is_left_alone(model):
    model.model.rotary_emb.rope_type = "dynamic"
    forward = model.model.rotary_emb.forward
    assert not tabulate_rotary(model, 64)
    assert model.model.rotary_emb.forward == forward
