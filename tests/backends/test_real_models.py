"""gearterm's decoder on the real models in ../shared and the pocket model, against
transformers: forced-high greedy replies equal generate(do_sample=False) token for token."""

import pytest
import torch

from gearterm.backends.base import GenerationParams, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend
from gearterm.models import POCKET_MODEL_DIR

from conftest import SMOLLM2, STORIES_GGUF, _need


def reply_ids(backend: HFBackend, messages, tokens: int, mode=GearMode.HIGH) -> list[int]:
    params = GenerationParams(max_tokens=tokens, gear_mode=mode)
    events = backend.generate(messages, params)
    return [e.token_id for e in events if isinstance(e, TokenEvent) and e.token_id is not None]


def transformers_reply(model, prompt: list[int], tokens: int, eos: set[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=tokens, do_sample=False, eos_token_id=sorted(eos))
    return out[0, len(prompt):].tolist()


def check_greedy_equals_transformers(backend: HFBackend, reference, messages, tokens: int = 200) -> list[int]:
    ours = reply_ids(backend, messages, tokens)
    theirs = transformers_reply(reference, backend.encode_chat(messages), tokens, backend.eos_ids)
    assert ours == theirs
    return ours


@pytest.mark.slow
def test_pocket_model(tmp_path):
    from transformers import AutoModelForCausalLM

    backend = HFBackend(str(POCKET_MODEL_DIR), device="cpu")
    backend.load()
    reference = AutoModelForCausalLM.from_pretrained(POCKET_MODEL_DIR, dtype=torch.float32)
    messages = [{"role": "user", "content": "Tell me a story of the king and his daughter."}]
    ids = check_greedy_equals_transformers(backend, reference, messages)
    assert len(ids) > 10 and ids[-1] in backend.eos_ids  # a reply of its own that ends its turn


def gguf_reference(path):
    from transformers import AutoModelForCausalLM, GgufConfig

    return AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=path.name, dequantize=True),
    )


@pytest.mark.slow
def test_stories260k_for_200_tokens_and_its_gguf_twin(stories_hf):
    from transformers import AutoModelForCausalLM

    backend = HFBackend(str(stories_hf), device="cpu")
    backend.load()
    reference = AutoModelForCausalLM.from_pretrained(stories_hf, dtype=torch.float32)
    story = [{"role": "user", "content": "Once upon a time"}]
    ids = check_greedy_equals_transformers(backend, reference, story)
    assert len(ids) == 200
    # The model as a float32 GGUF file, read through transformers' GGUF loader.
    twin = HFBackend(str(_need(STORIES_GGUF)), device="cpu")
    twin.load()
    assert len(check_greedy_equals_transformers(twin, gguf_reference(STORIES_GGUF), story)) == 200


@pytest.mark.slow
def test_smollm2_instruct_gguf_answers_like_transformers():
    path = _need(SMOLLM2)
    backend = HFBackend(str(path), device="cpu")
    backend.load()
    assert backend.model.shape.family == "llama" and backend.model.shape.tie_embeddings
    reference = gguf_reference(path)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    answer = check_greedy_equals_transformers(backend, reference, question, tokens=32)
    assert "Paris" in backend.tokenizer.decode(answer)
    check_greedy_equals_transformers(backend, reference, [{"role": "user", "content": "Write a long story about a lighthouse keeper."}])
