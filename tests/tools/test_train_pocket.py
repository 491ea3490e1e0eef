"""tools/train_pocket.py, the pocket model's training script: its text, its tokenizer's
normalization, its dialogue turns, and one tiny run end to end on slices of the real books whose
output transformers and gearterm both load."""

import json
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import pocket_text  # noqa: E402
from pocket_text import ASSISTANT, BOS, EOS, USER, conversations, dialogues, split_file, typeset  # noqa: E402

BOOKS = "nltk-gutenberg"


@pytest.fixture(scope="module")
def data(shared_dir) -> Path:
    return shared_dir / "data"


def test_typeset_text_normalizes_back_to_the_books_ascii(data):
    text = (data / BOOKS / "austen-emma.txt").read_text()[30_000:60_000]
    curly = typeset(text)
    assert {"\u201c", "\u201d", "\u2019", "\u2014"} <= set(curly) and '"' not in curly and "--" not in curly
    assert pocket_text.normalizer().normalize_str(curly) == text


def test_the_normalizer_maps_what_phones_and_word_processors_type():
    normalize = pocket_text.normalizer().normalize_str
    assert normalize("\u201cIt\u2019s \u2018so\u2019\u2026\u201d") == "\"It's 'so'...\""
    assert normalize("1914\u20131918 \u2014 war\u00a0ended") == "1914-1918 -- war ended"
    assert normalize("co\u00adoperate\u200b \uff21\ufb01") == "cooperate Afi"


def test_tiny_shakespeare_speeches_become_turns_without_their_speakers(data):
    path = data / "tinyshakespeare" / "input.txt"
    runs = dialogues(path, split_file(path)["train"])
    assert runs[0][:3] == ["Before we proceed any further, hear me speak.", "Speak, speak.",
                           "You are all resolved rather to die than to famish?"]


def test_the_nltk_plays_speeches_are_found_by_their_indented_speaker(data):
    path = data / BOOKS / "shakespeare-hamlet.txt"
    speeches = [s for run in dialogues(path, split_file(path)["train"]) for s in run]
    at = speeches.index("Do you know me, my Lord?")
    assert speeches[at + 1 : at + 3] == ["Excellent, excellent well: y'are a Fishmonger", "Not I my Lord"]
    assert not any(s.startswith(("Enter ", "Exeunt")) for s in speeches)


def test_novel_dialogue_keeps_only_the_words_inside_the_quotes(data):
    emma = data / BOOKS / "austen-emma.txt"
    speeches = [s for run in dialogues(emma, split_file(emma)["train"]) for s in run]
    at = speeches.index("Poor Miss Taylor!--I wish she were here again. What a pity it is that Mr. Weston ever thought of her!")
    assert speeches[at + 1].startswith("I cannot agree with you, papa;")
    assert not any('"' in s for s in speeches)
    alice = data / BOOKS / "carroll-alice.txt"
    speeches = [s for run in dialogues(alice, split_file(alice)["train"]) for s in run]
    at = speeches.index("What do you mean by that? Explain yourself!")
    # single quotes: the apostrophes inside the speech stay, "said Alice" between its parts goes
    assert speeches[at + 1] == "I can't explain MYSELF, I'm afraid, sir because I'm not myself, you see."


def test_no_dialogue_is_found_in_scripture_or_verse(data):
    for name in ("bible-kjv.txt", "milton-paradise.txt", "whitman-leaves.txt"):
        path = data / BOOKS / name
        assert dialogues(path, split_file(path)["train"]) == []


def test_conversations_are_two_to_eight_turns_in_order():
    run = [f"speech {i}" for i in range(30)]
    chats = conversations([run, ["alone"]], random.Random(0))
    assert all(2 <= len(c) <= pocket_text.MAX_TURNS for c in chats)
    flat = [s for c in chats for s in c]
    assert flat == run[: len(flat)] and len(run) - len(flat) <= 1


# ---- one tiny run, end to end -------------------------------------------------------------

SLICE = 40_000  # characters of each file: enough for every split to hold paragraphs and dialogue
FILES = [f"{BOOKS}/{n}" for n in ("austen-emma.txt", "bible-kjv.txt", "carroll-alice.txt", "shakespeare-hamlet.txt",
                                  pocket_text.UNSEEN_BOOK)]
FILES += ["tinyshakespeare/input.txt", str(pocket_text.TINYSTORIES)]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    import train_pocket

    root = tmp_path_factory.mktemp("pocket")
    for name in FILES:
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        # Slices end at a line; the end of each file (its held-out part) is a real end of text.
        text = (data / name).read_text(encoding="utf-8", errors="replace")[-SLICE:]
        (root / "data" / name).write_text(text[text.index("\n") + 1 :], encoding="utf-8")
    out = root / "model"
    argv = ["--data-dir", str(root / "data"), "--out", str(out), "--device", "cpu", "--steps", "6",
            "--batch-size", "4", "--context", "96", "--vocab-size", "600", "--warmup", "2", "--log-every", "3",
            "--eval-every", "3", "--eval-chars", "3000"]
    assert train_pocket.main(argv) == 0
    return out


def test_the_run_writes_a_model_transformers_loads_with_the_chat_format(trained):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained)
    assert AutoConfig.from_pretrained(trained).max_position_embeddings == 96 == tokenizer.model_max_length
    messages = [{"role": "user", "content": " Who art thou? "}, {"role": "assistant", "content": "A friend."},
                {"role": "user", "content": "Whence?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s><|user|>Who art thou?</s><|assistant|>A friend.</s><|user|>Whence?</s><|assistant|>"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    import train_pocket

    # what the model trained on is what the template writes, token for token
    trained_on, _ = train_pocket.encode_chats(tokenizer.backend_tokenizer, [["Who art thou?", "A friend.", "Whence?"]])
    assert ids == [*trained_on.tolist(), ASSISTANT]
    assert (ids[0], ids[1], ids[-1]) == (BOS, USER, ASSISTANT) and ids.count(EOS) == 3
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Who art thou?A friend.Whence?"
    # the tokenizer as loaded normalizes a prompt's curly punctuation
    assert tokenizer("\u201cAy\u2019\u2026\u201d").input_ids == tokenizer("\"Ay'...\"").input_ids


def test_the_run_writes_figures_and_chats_and_a_card(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    table = metrics["perplexity"]
    assert list(table) == ["held-out", f"{BOOKS}/{pocket_text.UNSEEN_BOOK}", str(pocket_text.TINYSTORIES)]
    held = table["held-out"]
    # ASCII books: the normalizer changes nothing, and it turns the typeset text back into the file's
    assert held["file_raw"] == held["file_normalized"] == held["typeset_normalized"]
    assert held["typeset_raw"]["tokens"] > held["file_raw"]["tokens"]
    assert metrics["held_out_chat"]["tokens"] > 0
    assert [len(s["messages"]) for s in metrics["samples"]] == [4, 4, 4]
    assert [m["role"] for m in metrics["samples"][0]["messages"]] == ["user", "assistant"] * 2
    card = (trained / "MODEL_CARD.md").read_text()
    assert "| context | 96 tokens" in card and "typeset, not normalized" in card
    assert metrics["samples"][2]["messages"][0]["content"] in card


def test_gearterm_runs_the_trained_directory(trained):
    from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend

    backend = HFBackend(str(trained), device="cpu", gate=False)
    backend.load()
    assert backend.max_positions == 96 and backend.eos_ids == {EOS}
    events = list(backend.generate([{"role": "user", "content": "Speak."}], GenerationParams(max_tokens=5, gear_mode=GearMode.LOW)))
    assert sum(isinstance(e, TokenEvent) and e.is_token for e in events) >= 1 and isinstance(events[-1], ReplyDone)
