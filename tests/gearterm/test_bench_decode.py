"""`gearterm bench decode` on the CPU with the tiny random shape: the plumbing of the modes
table's weight-read limit and of the context sweep (the figures belong to docs/benchmarks)."""

import json

import pytest
import torch

from gearterm.backends.geared_linear import gear_decoder_layers
from gearterm.bench.decode import random_llama
from gearterm.bench.step_bytes import kv_bytes_per_position, weight_bytes
from gearterm.cli import main
from gearterm.kernels.gear import Gear, GearSelector


def test_a_steps_weight_bytes_are_the_16_bit_model_less_all_but_one_embedding_row_in_the_high_gear():
    from gearterm.backends.decoder_weights import build_decoder

    model = random_llama("tiny", torch.float32, "cpu")
    decoder = build_decoder(model.config, model.state_dict(), torch.float32, torch.device("cpu"))
    before = sum(p.numel() * 4 for p in decoder.parameters())
    gear_decoder_layers(decoder.layers, GearSelector())
    decoder.allocate(100)
    weights = weight_bytes(decoder)
    embedding = decoder.embed.weight
    assert weights[Gear.HIGH] == before - embedding.numel() * 4 + embedding.shape[1] * 4
    assert weights[Gear.LOW] < weights[Gear.MID] < weights[Gear.HIGH]
    s = decoder.shape
    assert kv_bytes_per_position(decoder) == 2 * s.num_layers * s.num_kv_heads * s.head_dim * 4


def test_every_mode_row_states_its_bytes_read_rate_and_share_of_the_limit(capsys, tmp_path, monkeypatch):
    for name in ("GEARTERM_QKV_EPILOGUE", "GEARTERM_GEMV_TMA", "GEARTERM_GEMV_PIN"):
        monkeypatch.delenv(name, raising=False)
    out_json = tmp_path / "decode.json"
    code = main(["bench", "decode", "--shape", "tiny", "--device", "cpu", "--tokens", "4", "--prompt-tokens", "8",
                 "--baseline-tokens", "4", "--json-out", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    rows = {r["mode"].split(" (")[0]: r for r in json.loads(out_json.read_text())}
    assert set(rows) == {"transformers generate", "high", "mid", "low", "auto", "lossless"}
    # A lossless token is drafts and a share of a verify pass, not one step's read: no limit.
    assert rows.pop("lossless")["limit_tok_per_s"] is None and "lossless" in out
    for r in rows.values():
        assert r["tbps"] == pytest.approx(r["bytes_per_step"] * r["tok_per_s"] / 1e12)
        assert r["limit_share"] == pytest.approx(r["tok_per_s"] / r["limit_tok_per_s"])
    # Fewer bytes a step, a higher limit.
    assert rows["low"]["limit_tok_per_s"] > rows["mid"]["limit_tok_per_s"] > rows["high"]["limit_tok_per_s"]
    assert "limit: the tokens/s of a step that reads its bytes" in out and "TB/s, the LM head's batch-1 GEMV" in out
    assert "note: experiments on: none (GEARTERM_QKV_EPILOGUE, GEARTERM_GEMV_TMA, GEARTERM_GEMV_PIN unset)" in out


def test_the_context_sweep_fills_each_length_in_the_high_and_the_low_gear(capsys, tmp_path):
    out_json = tmp_path / "sweep.json"
    code = main(["bench", "decode", "--shape", "tiny", "--device", "cpu", "--tokens", "4",
                 "--context-sweep", "300,16", "--json-out", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out_json.read_text())
    assert [(r["filled"], r["mode"]) for r in rows] == [(16, "high"), (16, "low"), (300, "high"), (300, "low")]
    for r in rows:
        assert r["gear_mix"][r["mode"]] == 1  # the forced gear ran every step
        assert r["prefill_tok_per_s"] == pytest.approx(r["filled"] / r["prefill_s"])
    short, long = rows[0], rows[2]
    # The steps attend over the filled positions and half the tokens decoded, on average.
    assert long["kv_bytes_per_step"] / short["kv_bytes_per_step"] == pytest.approx((300 + 2) / (16 + 2))
    assert short["predicted_ms_per_token"] == short["ms_per_token"]
    extra_s = (long["kv_bytes_per_step"] - short["kv_bytes_per_step"]) / (long["bandwidth_tbps"] * 1e12)
    assert long["predicted_ms_per_token"] == pytest.approx(short["ms_per_token"] + extra_s * 1e3)
    assert long["excess_ms"] == pytest.approx(max(0.0, long["ms_per_token"] - long["predicted_ms_per_token"]))
    table = [line.split() for line in out.splitlines() if line.split()[:1] in (["16"], ["300"])]
    assert [(int(t[0]), t[1]) for t in table] == [(r["filled"], r["mode"]) for r in rows]
    assert all(" ".join(t[8:]) == "within prediction" or "ms over" in " ".join(t[8:]) for t in table)


def test_a_context_smaller_than_the_sweep_is_refused(capsys):
    code = main(["bench", "decode", "--shape", "tiny", "--device", "cpu", "--context-sweep", "512,1024", "--context", "600"])
    assert code == 2
    assert "--context 600 holds fewer than the 1280 positions this run fills" in capsys.readouterr().err
