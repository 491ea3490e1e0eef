"""`gearterm bench ui --json` runs end to end and prints the figures it promises (a short run)."""

import json

from gearterm.cli import main


def test_bench_ui_json(capsys):
    assert main(["bench", "ui", "--seconds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"tokens_per_s", "keypress_latency_ms", "frames"} <= set(result)
    assert set(result["keypress_latency_ms"]) == {"p50", "p99"}
    assert result["frames"] > 0 and result["keypresses"] > 0
    assert result["keypress_latency_ms"]["p50"] <= result["keypress_latency_ms"]["p99"]
    assert result["tokens_per_s"] > 0.3 * 500  # the stream reached the screen (wide margin: a loaded CI box)
