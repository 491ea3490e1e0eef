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
