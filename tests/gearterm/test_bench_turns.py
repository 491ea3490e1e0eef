"""`gearterm bench turns` on the pocket model: a row per turn of the scripted conversation, the
cache reused from the second turn on (the figures themselves belong to docs/benchmarks)."""

import json

from gearterm.bench.turns import QUESTIONS
from gearterm.cli import main
from gearterm.models import POCKET_MODEL_DIR


def test_a_row_per_turn_and_every_turn_after_the_first_reuses_the_cache(capsys, tmp_path):
    out_json = tmp_path / "turns.json"
    code = main(["bench", "turns", "--model", str(POCKET_MODEL_DIR), "--tokens", "4", "--rounds", "1", "--json-out", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, len(QUESTIONS) + 1))
    runs = json.loads(out_json.read_text())
    fresh, reused = runs["fresh"][0], runs["reused"][0]
    assert all(turn["reused"] == 0 for turn in fresh)
    assert reused[0]["reused"] == 0
    # Each turn reuses at least the whole prompt of the turn before.
    assert all(b["reused"] >= a["prompt_tokens"] for a, b in zip(reused, reused[1:]))
    assert [int(r[2]) for r in rows] == [turn["reused"] for turn in reused]


def test_a_random_shape_talks_in_ids_each_turn_its_questions_length_and_every_reply_the_tokens_asked(capsys, tmp_path):
    """--shape (the Llama-3-8B shape on a GPU; tiny here): random ids stand for the turns, the
    replies run to --tokens, and in the high gear the next turn reuses all of the one before."""
    from gearterm.bench.turns import TEMPLATE_IDS, TOKENS_PER_WORD

    out_json = tmp_path / "turns.json"
    code = main(["bench", "turns", "--shape", "tiny", "--device", "cpu", "--gear", "high", "--tokens", "4",
                 "--rounds", "1", "--json-out", str(out_json)])
    assert code == 0
    assert "model random tiny weights  gear high, replies up to 4 tokens" in capsys.readouterr().out
    runs = json.loads(out_json.read_text())
    fresh, reused = runs["fresh"][0], runs["reused"][0]
    assert [t["prompt_tokens"] for t in fresh] == [t["prompt_tokens"] for t in reused]
    for question, (a, b) in enumerate(zip(reused, reused[1:]), start=1):
        asked = TEMPLATE_IDS["user"] + round(TOKENS_PER_WORD * len(QUESTIONS[question].split()))
        assert b["prompt_tokens"] == a["prompt_tokens"] + 4 + asked
        assert b["reused"] == a["prompt_tokens"] + 3  # the reply's last token was never run


def test_a_pasted_document_puts_every_turn_that_many_positions_deeper(tmp_path):
    runs = {}
    for document in (0, 300):
        out_json = tmp_path / f"turns-{document}.json"
        code = main(["bench", "turns", "--shape", "tiny", "--device", "cpu", "--gear", "high", "--tokens", "2",
                     "--rounds", "1", "--document-tokens", str(document), "--json-out", str(out_json)])
        assert code == 0
        runs[document] = json.loads(out_json.read_text())["reused"][0]
    assert [b["prompt_tokens"] - a["prompt_tokens"] for a, b in zip(runs[0], runs[300])] == [300] * len(QUESTIONS)
    assert runs[300][-1]["reused"] > 300
