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


def test_the_chat_template_marks_each_turn_and_ends_where_the_reply_begins(pocket):
    tokenizer, _ = pocket
    messages = [{"role": "system", "content": "A tale."}, {"role": "user", "content": "Who art thou? "},
                {"role": "assistant", "content": "A friend."}, {"role": "user", "content": "Whence?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s>A tale.</s><|user|>Who art thou?</s><|assistant|>A friend.</s><|user|>Whence?</s><|assistant|>"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids.count(tokenizer.eos_token_id) == 4 and ids[-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")


def test_the_tokenizer_reads_curly_punctuation_as_a_keyboard_types_it(pocket):
    tokenizer, _ = pocket
    assert tokenizer("\u201cIt\u2019s so\u2026\u201d \u2014 she said").input_ids == tokenizer('"It\'s so..." -- she said').input_ids


def _greedy_reply(tokenizer, model, messages, max_new_tokens=80):
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


def test_greedy_replies_are_words_that_end_their_turn(pocket):
    tokenizer, model = pocket
    messages = [{"role": "user", "content": "Tell me of the sea."}]
    reply = _greedy_reply(tokenizer, model, messages)
    assert reply == _greedy_reply(tokenizer, model, messages)
    assert reply[-1] == tokenizer.eos_token_id, tokenizer.decode(reply)  # the turn ends before 80 tokens
    assert any(c.isalpha() for c in tokenizer.decode(reply, skip_special_tokens=True))


def test_a_second_turn_gets_a_reply_of_its_own(pocket):
    """Version 1 gave every reply after the first the same words, whatever the question."""
    tokenizer, model = pocket
    first = [{"role": "user", "content": "What did you see upon the sea?"}]
    first.append({"role": "assistant", "content": tokenizer.decode(_greedy_reply(tokenizer, model, first), skip_special_tokens=True)})
    replies = {tuple(_greedy_reply(tokenizer, model, [*first, {"role": "user", "content": q}]))
               for q in ("And what became of the ship?", "Where is the king?", "Why do you weep?")}
    assert len(replies) == 3


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
