"""A GGUF's config and tokenizer kept after their first conversion (backends.gguf_kept): read
back, they are what transformers converts from the file; a changed file, a damaged copy or a
cache dir that cannot be written each leave the load converting, as before."""

import json
import os

import pytest

from gearterm.backends import gguf_kept

from conftest import SMOLLM2, STORIES_GGUF, _need

MESSAGES = [
    {"role": "system", "content": "You answer in one line."},
    {"role": "user", "content": "Hello <|im_end|> there: é ü 😀\n\n  twice  "},
]


@pytest.fixture
def root(monkeypatch, tmp_path):
    monkeypatch.setattr(gguf_kept, "kept_root", lambda: tmp_path / "kept")
    return tmp_path / "kept"


def _both(file):
    return gguf_kept.gguf_config(file.parent, file.name), gguf_kept.gguf_tokenizer(file.parent, file.name)


def test_a_chat_models_kept_tokenizer_and_config_are_the_converted_ones(root):
    """SmolLM2's Q4_1 GGUF (a real chat model, 49,152 tokens): the copies read back give the same
    config, the same chat prompt, the same ids for text with a special token and non-ASCII in it,
    and the same special tokens."""
    file = _need(SMOLLM2)
    config, tokenizer = _both(file)
    (kept,) = root.glob("*/*")  # the path's folder, its one version
    assert {p.name for p in kept.iterdir()} == {"config", "tokenizer"}
    config_back, tokenizer_back = _both(file)
    assert config_back.to_dict() == config.to_dict()
    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert tokenizer_back.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == prompt
    assert tokenizer_back(prompt).input_ids == tokenizer(prompt).input_ids
    assert len(tokenizer_back) == len(tokenizer) == 49152
    assert tokenizer_back.all_special_ids == tokenizer.all_special_ids
    assert (tokenizer_back.eos_token_id, tokenizer_back.bos_token_id) == (tokenizer.eos_token_id, tokenizer.bos_token_id)


def test_a_changed_file_is_converted_again_and_its_older_copy_goes(root, tmp_path):
    """The copy is the file's as it was: the same path with a new modification time is converted
    again, and its copy replaces the older one (one a path); another file's copy stays."""
    file = tmp_path / "model" / STORIES_GGUF.name
    file.parent.mkdir()
    file.write_bytes(_need(STORIES_GGUF).read_bytes())
    _both(file)
    _both(STORIES_GGUF)
    before = gguf_kept._kept_dir(file)
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 10**9))
    _both(file)
    after = gguf_kept._kept_dir(file)
    assert after != before and after.parent == before.parent
    assert len(list(root.iterdir())) == 2  # the two paths
    versions = list(after.parent.iterdir())
    assert versions == [after]
    assert {p.name for p in after.iterdir()} == {"config", "tokenizer"}


def test_a_damaged_copy_is_converted_again(root):
    file = _need(STORIES_GGUF)
    config, _ = _both(file)
    (config_json,) = root.glob("*/*/config/config.json")
    config_json.write_text("{ not json")
    (tokenizer_json,) = root.glob("*/*/tokenizer/tokenizer_config.json")
    tokenizer_json.write_text("{ not json")
    config_again, tokenizer_again = _both(file)
    assert config_again.to_dict() == config.to_dict() and len(tokenizer_again) == 512
    assert json.loads(config_json.read_text())["vocab_size"] == 512  # and kept again, whole


def test_a_cache_dir_that_cannot_be_written_leaves_the_load_converting(root):
    root.parent.mkdir(exist_ok=True)
    root.write_text("a file where the cache dir would go")
    config, tokenizer = _both(_need(STORIES_GGUF))
    assert config.vocab_size == 512 and len(tokenizer) == 512
    assert root.is_file() and not list(root.parent.glob(".writing-*"))
