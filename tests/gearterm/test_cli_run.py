"""`gearterm run` and `gearterm bench quality` as a user meets them: output formats and bad input."""

import json

import pytest

from gearterm.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines_and_summary(capsys, stories_hf):
    code, out, _ = run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", "Once upon a time", "--max-tokens", "12", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    tokens, summary = lines[:-1], lines[-1]["summary"]
    assert len(tokens) == 12
    assert all(set(t) == {"text", "token_id", "gear", "entropy_bits", "gate_survival"} for t in tokens)
    assert all(len(t["gate_survival"]) == 5 for t in tokens)  # one decision per decoder layer
    assert {t["gear"] for t in tokens} <= {"low", "mid", "high"}
    assert summary["tokens"] == 12 and summary["backend"] == "hf"
    assert sum(summary["gear_mix"].values()) == pytest.approx(1.0)
    mix = {g: sum(t["gear"] == g for t in tokens) / 12 for g in ("low", "mid", "high")}
    assert summary["gear_mix"] == pytest.approx(mix)
    mean = sum(t["entropy_bits"] for t in tokens) / 12
    assert summary["mean_entropy_bits"] == pytest.approx(mean)
    assert summary["shifts"] == sum(a["gear"] != b["gear"] for a, b in zip(tokens, tokens[1:]))
    assert summary["tok_per_s"] > 0
    assert summary["context"] == 512 and 12 < summary["context_used"] <= 12 + len("Once upon a time") + 2


def test_plain_output_is_the_reply_then_a_summary(capsys, stories_hf):
    code, out, err = run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", "Once upon a time", "--gear", "high", "--max-tokens", "8")
    assert code == 0
    assert out.startswith(", there was a little girl")
    assert "8 tokens" in err and "gear mix low 0% mid 0% high 100%" in err and "0 shifts" in err


def test_lossless_json_says_where_each_token_came_from(capsys, tmp_path, stories_hf):
    prompt = ("--model", str(stories_hf), "--prompt", "Once upon a time", "--max-tokens", "40", "--json")
    _, out, _ = run_cli(capsys, "run", *prompt, "--gear", "high")
    high = [json.loads(line) for line in out.splitlines()][:-1]
    config = tmp_path / "config.toml"
    config.write_text('[generation]\nlossless_draft = "mid"\nlossless_max_draft = 3\n')
    code, out, err = run_cli(capsys, "run", "--config", str(config), *prompt, "--gear", "lossless")
    lines = [json.loads(line) for line in out.splitlines()]
    tokens, summary = lines[:-1], lines[-1]["summary"]
    assert code == 0 and [t["token_id"] for t in tokens] == [t["token_id"] for t in high]
    assert {t["kept_from"] for t in tokens} == {"draft", "high"}
    assert all(t["gear"] == ("mid" if t["kept_from"] == "draft" else "high") for t in tokens)
    cycles = summary["lossless"]
    assert cycles["draft_gear"] == "mid" and cycles["mean_draft"] <= 3
    accepted = sum(t["kept_from"] == "draft" for t in tokens)
    assert cycles["accepted_per_verify_pass"] == pytest.approx(accepted / cycles["verify_passes"])


def test_lossless_max_draft_must_be_a_whole_number_from_1(capsys, stories_hf):
    argv = ("run", "--model", str(stories_hf), "--prompt", "hi", "--gear", "lossless", "--lossless-max-draft", "0")
    _one_clean_error(*run_cli(capsys, *argv), "--lossless-max-draft must be a whole number from 1 to 64")


def _one_clean_error(code, out, err, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gearterm: error:") and fragment in lines[0], err
    assert "Traceback" not in err + out


def test_missing_model_path(capsys, tmp_path):
    result = run_cli(capsys, "run", "--model", str(tmp_path / "nope"), "--prompt", "hi")
    _one_clean_error(*result, "no such model directory")


def test_a_file_that_is_not_gguf_is_refused_with_what_model_takes(capsys, tmp_path):
    weights = tmp_path / "stories260K.bin"  # a llama2.c checkpoint, say
    weights.write_bytes(b"\0" * 64)
    _one_clean_error(*run_cli(capsys, "run", "--model", str(weights), "--prompt", "hi"), "a .gguf file")


def test_directory_without_weights(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    _one_clean_error(*run_cli(capsys, "run", "--model", str(tmp_path), "--prompt", "hi"), "no weights")


def test_directory_without_config(capsys, tmp_path):
    _one_clean_error(*run_cli(capsys, "run", "--model", str(tmp_path), "--prompt", "hi"), "no config.json")


def test_pickle_only_model_needs_opt_in(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    _one_clean_error(*run_cli(capsys, "run", "--model", str(tmp_path), "--prompt", "hi"), "--allow-pickle")


def test_remote_code_model_needs_opt_in(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    _one_clean_error(*run_cli(capsys, "run", "--model", str(tmp_path), "--prompt", "hi"), "--trust-remote-code")


def test_unknown_hub_id_is_not_downloaded(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = run_cli(capsys, "run", "--model", "someone/not-cached", "--prompt", "hi")
    _one_clean_error(*result, "not-cached")


def test_empty_prompt(capsys, stories_hf):
    _one_clean_error(*run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", "  "), "prompt is empty")


@pytest.mark.parametrize("n", ["0", "-3"])
def test_max_tokens_must_be_positive(capsys, stories_hf, n):
    _one_clean_error(*run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", "hi", "--max-tokens", n), "--max-tokens must be a whole number from 1")


def test_unknown_gear_mode(capsys, stories_hf):
    _one_clean_error(*run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", "hi", "--gear", "turbo"), "turbo")


def test_bench_quality_json(capsys, stories_hf, tinystories_text):
    code, out, _ = run_cli(capsys, "bench", "quality", "--model", str(stories_hf), "--text", str(tinystories_text), "--tokens", "300", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["tokens"] >= 300 and set(result["modes"]) == {"high", "mid", "low", "auto"}
    high, low, auto = result["modes"]["high"], result["modes"]["low"], result["modes"]["auto"]
    assert high["ppl_delta_pct"] == 0 and high["top1_agreement"] == 1
    assert low["ppl"] > high["ppl"] and low["top1_agreement"] < 1  # int4 costs something on real weights
    assert low["gear_mix"] == {"low": 1.0, "mid": 0.0, "high": 0.0}
    assert sum(auto["gear_mix"].values()) == pytest.approx(1.0) and auto["shifts"] > 0
    lossless = result["lossless"]  # generated, greedy: every token is forced high's
    assert lossless["tokens"] > 0 and lossless["same_as_high"] == 1
    assert lossless["lossless_ppl"] == lossless["high_ppl"]


def test_the_app_and_run_take_the_same_flags():
    import argparse

    from gearterm.cli import build_parser

    def flags(parser):
        return {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}

    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    app, run = flags(parser), flags(commands.choices["run"])
    assert "--config" in app and "--timeout" in app and "--seed" in app
    assert run - app == {"--prompt", "--prompt-file", "--json"} and app <= run


def test_flags_win_over_the_config_file(capsys, tmp_path, stories_hf):
    config = tmp_path / "config.toml"
    config.write_text(f'model = "{stories_hf}"\ngear = "low"\n[generation]\nmax_tokens = 3\n')
    code, out, _ = run_cli(capsys, "run", "--config", str(config), "--prompt", "Once", "--gear", "high", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 4 and {r["gear"] for r in rows[:-1]} == {"high"}
    assert rows[-1]["summary"]["model"] == str(stories_hf)


def test_a_long_prompt_says_on_stderr_how_far_it_was_read(capsys, monkeypatch, stories_hf):
    """The prompt is read 32 positions a call here, so that a short one takes several."""
    from gearterm.backends import geared_generation

    monkeypatch.setattr(geared_generation, "PROMPT_STEP", 32)
    story = "Once upon a time there was a little girl who liked to play in the park with her dog. " * 4
    code, out, err = run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", story, "--max-tokens", "4", "--json")
    total = json.loads(out.splitlines()[-1])["summary"]["context_used"] - 4
    reads = [line for line in err.splitlines() if "reading the prompt" in line]
    assert code == 0 and len(reads) >= 2 and reads == [f"gearterm: reading the prompt: {n} of {total} tokens" for n in range(32, total, 32)]
