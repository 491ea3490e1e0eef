"""The pocket model as installed: its files are in the package, it loads offline and it is trained."""

import importlib.resources
import json
import math
from pathlib import Path

import pytest
import torch

from gearterm.models import POCKET_MODEL_DIR
from gearterm.kernels.entropy import entropy_varentropy

FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "MODEL_CARD.md")
# Written for this test in the manner of the King James Bible; it is not a passage of the books.
TEXT = (
    "And it came to pass, when the king heard the words of the prophet, that he rent his clothes, "
    "and went up into the house of the LORD, and spake unto all the people, saying, Hear ye the word "
    "of the LORD, O ye children of Israel."
)


@pytest.fixture(scope="module")
def installed_pocket() -> Path:
    """The pocket model where the installed gearterm package keeps it."""
    resource = importlib.resources.files("gearterm") / "models" / "pocket"
    with importlib.resources.as_file(resource) as path:
        yield Path(path)


@pytest.fixture(scope="module")
def pocket(installed_pocket):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(installed_pocket, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(installed_pocket, local_files_only=True, dtype=torch.float32)
    return tokenizer, model.eval()


def test_the_package_holds_the_model_files(installed_pocket):
    assert installed_pocket == POCKET_MODEL_DIR
    for name in FILES:
        assert (installed_pocket / name).is_file(), f"{name} missing from the installed package"
    total = sum(f.stat().st_size for f in installed_pocket.iterdir())
    assert total <= 25_000_000


def test_weights_are_16_bit_and_the_tokenizer_loads_in_transformers_4_and_5(installed_pocket):
    from safetensors import safe_open

    with safe_open(installed_pocket / "model.safetensors", "pt") as f:
        dtypes = {f.get_slice(name).get_dtype() for name in f.keys()}
    assert dtypes == {"BF16"}
    config = json.loads((installed_pocket / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (config["bos_token"], config["eos_token"]) == ("<s>", "</s>")


def test_the_chat_template_writes_each_message_as_a_paragraph(pocket):
    tokenizer, _ = pocket
    messages = [{"role": "user", "content": "Who art thou? "}, {"role": "assistant", "content": "A friend."}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s>Who art thou?</s>A friend.</s>"
    assert tokenizer(text, add_special_tokens=False).input_ids.count(tokenizer.eos_token_id) == 2


def test_greedy_generation_continues_with_words(pocket):
    tokenizer, model = pocket
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me of the sea."}], tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        first = model.generate(ids, max_new_tokens=12, do_sample=False)
        second = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert torch.equal(first, second)
    reply = tokenizer.decode(first[0, ids.shape[1] :], skip_special_tokens=True)
    words = [w for w in reply.split() if any(c.isalpha() for c in w)]
    assert len(words) >= 3, reply


def test_the_model_is_trained_and_its_entropy_varies(pocket):
    """Random weights would give about log2(8192) = 13 bits at every position and a loss near 9 nats."""
    tokenizer, model = pocket
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    loss = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    bits, _ = entropy_varentropy(logits)
    assert loss < 4.0, f"loss {loss:.2f} nats/token: not a trained model"
    assert bits.mean().item() < 0.5 * math.log2(model.config.vocab_size)
    # The gears need both confident and unsure steps to react to.
    assert bits.min().item() < 1.0 and bits.max().item() > 4.0, bits
