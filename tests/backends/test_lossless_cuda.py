"""Lossless mode on a CUDA GPU (GraphDecoder: draft steps replay the draft gear's captured
step, verify passes replay a graph captured per length): greedy tokens equal forced high's on
the same GPU, for every real model in ../shared, the pocket model and a tiny random model of
every supported family (mixtures of experts run eagerly). Skipped without CUDA."""

import pytest
import torch

from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
from gearterm.backends.cuda_decoder import GraphDecoder
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend

from conftest import _need
from test_gpu_equals_cpu import REAL_MODELS, family_dir  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def high_and_lossless(model: str, tokens: int, dtype: str = "float32", compile: bool = False):
    backend = HFBackend(model, device="cuda", dtype=dtype, gate=False, compile=compile)
    backend.load()
    backend.eos_ids = set()  # the whole length, whatever the model would say
    ids = backend.tokenizer("Once upon a time")["input_ids"]
    replies = {}
    for mode in (GearMode.HIGH, GearMode.LOSSLESS):
        events = list(backend._generate(ids, GenerationParams(max_tokens=tokens, gear_mode=mode)))
        replies[mode] = [e.token_id for e in events if isinstance(e, TokenEvent) and e.is_token]
        done = events[-1]
    assert isinstance(done, ReplyDone) and done.stats["accepted"] > 0
    return backend, replies[GearMode.HIGH], replies[GearMode.LOSSLESS]


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_model_lossless_equals_forced_high_on_the_gpu(name):
    backend, high, lossless = high_and_lossless(str(_need(REAL_MODELS[name])), 200, compile=True)
    assert len(lossless) == 200 and lossless == high
    assert isinstance(backend.decoder, GraphDecoder) and backend.decoder.verify_graphs  # replayed, not eager


def test_family_lossless_equals_forced_high_on_the_gpu(family_dir):  # noqa: F811
    _, high, lossless = high_and_lossless(str(family_dir), 64)
    assert lossless == high


def test_smollm2_in_float16_lossless_equals_forced_high():
    """The GPU's default dtype: a verify pass multiplies k + 1 rows where a step multiplies one,
    so a near-tie between two tokens may round the other way; this says whether it does here."""
    _, high, lossless = high_and_lossless(str(_need(REAL_MODELS["smollm2-gguf"])), 200, dtype="float16", compile=True)
    assert lossless == high
