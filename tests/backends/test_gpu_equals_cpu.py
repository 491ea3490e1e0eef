"""The GPU path (static cache, the Triton gear kernels and decode attention, CUDA graphs where
the model allows) against the CPU path on the same weights: forced-high greedy tokens equal,
float32 on both, for every real model in ../shared, the pocket model, and a tiny random model
of every supported family (mixtures of experts included, which run eagerly on a GPU).
Skipped without CUDA: CI has no GPU; these run on the project's H200."""

import copy

import pytest
import torch

from gearterm.backends.base import GenerationParams, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend
from gearterm.bench.families import save_random_model
from gearterm.kernels.gear import Gear
from gearterm.models import POCKET_MODEL_DIR

from conftest import SMOLLM2, STORIES_GGUF, STORIES_HF, _need
from test_decoder import CONFIGS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

REAL_MODELS = {"stories260K-hf": STORIES_HF, "stories260K-gguf": STORIES_GGUF, "smollm2-gguf": SMOLLM2,
               "pocket": POCKET_MODEL_DIR}


def greedy(model: str, device: str, prompt: str, tokens: int, mode: GearMode = GearMode.HIGH,
           compile: bool = False) -> list[int]:
    backend = HFBackend(model, device=device, dtype="float32", gate=False, compile=compile)
    backend.load()
    backend.eos_ids = set()  # the whole length, whatever the model would say
    ids = backend.tokenizer(prompt)["input_ids"]
    events = backend._generate(ids, GenerationParams(max_tokens=tokens, gear_mode=mode))
    return [e.token_id for e in events if isinstance(e, TokenEvent) and e.is_token]


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_model_greedy_on_the_gpu_equals_the_cpu(name):
    model = str(_need(REAL_MODELS[name]))
    cpu = greedy(model, "cpu", "Once upon a time", 200)
    gpu = greedy(model, "cuda", "Once upon a time", 200, compile=True)
    assert len(gpu) == 200 and gpu == cpu


@pytest.fixture(scope="module", params=list(CONFIGS))
def family_dir(request, tmp_path_factory):
    """A tiny random model of the family saved by transformers, with stories260K's tokenizer
    (512 tokens) beside it so that the backend loads it like any model directory."""
    path = tmp_path_factory.mktemp(request.param)
    config = copy.deepcopy(CONFIGS[request.param])
    config.vocab_size = 512
    save_random_model(config, path, _need(STORIES_HF))
    return path


def test_family_greedy_on_the_gpu_equals_the_cpu(family_dir):
    cpu = greedy(str(family_dir), "cpu", "Once upon a time", 64)
    gpu = greedy(str(family_dir), "cuda", "Once upon a time", 64)
    assert len(gpu) == 64 and gpu == cpu


def test_family_low_and_mid_gears_run_on_the_gpu_and_move_the_logits(family_dir):
    """Each gear computes its own logits on the GPU too, and low lands farther from high than mid."""
    backend = HFBackend(str(family_dir), device="cuda", dtype="float32", gate=False, compile=False)
    backend.load()
    ids = backend.tokenizer("Once upon a time")["input_ids"]
    logits = {}
    for gear in Gear:
        backend.selector.gear = gear
        backend._prefill(ids, 0, GenerationParams(gear_mode=GearMode(gear.label)))
        logits[gear] = backend._logits.float().cpu()
    assert torch.isfinite(torch.stack(list(logits.values()))).all()
    far = {g: (logits[g] - logits[Gear.HIGH]).abs().max().item() for g in (Gear.LOW, Gear.MID)}
    assert 0 < far[Gear.MID] < far[Gear.LOW]
