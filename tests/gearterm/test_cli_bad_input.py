"""`gearterm run` on the bad input and faults of issue 19: each ends in one line that says what
happened and what to do (exit 2 for bad input, 1 for a runtime fault), never a traceback.

Servers are played by the loopback server (tests/loopback_http.py) speaking Ollama's wire
format: a real server cannot be made to fall silent on cue."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, STORIES_GGUF, _need
from gearterm.cli import main
from loopback_http import Hold, LoopbackServer, Reply, closed_port_url

CLI = "import sys; from gearterm.cli import main; sys.exit(main())"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error(err: str) -> str:
    """The single error line on stderr (a summary or notices may come before it)."""
    errors = [line for line in err.splitlines() if line.startswith("gearterm: error:")]
    assert len(errors) == 1, err
    return errors[0]


def ollama_server(*chat_steps) -> LoopbackServer:
    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda _: Reply.json({"models": [{"name": "m:latest"}]})
    server.routes[("POST", "/api/show")] = lambda _: Reply.json({"model_info": {"llama.vocab_size": 64}})
    server.routes[("POST", "/api/chat")] = lambda _: Reply(steps=list(chat_steps))
    return server


def ollama_line(content: str) -> bytes:
    token = {"token": content, "logprob": -0.5, "top_logprobs": [{"token": content, "logprob": -0.5}]}
    return json.dumps({"message": {"role": "assistant", "content": content}, "done": False, "logprobs": [token]}).encode() + b"\n"


def test_a_prompt_that_is_not_utf8_is_refused_before_any_model_loads():
    """Through a real process: the shell hands Python the byte 0xff, which it decodes as a surrogate."""
    result = subprocess.run(
        [sys.executable, "-c", CLI, "run", "--prompt", b"a\xff", "--max-tokens", "1"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == (
        "gearterm: error: --prompt is not UTF-8 text (byte 0xff at offset 1): pass the prompt as UTF-8\n"
    )


def test_a_prompt_that_is_not_utf8_never_reaches_an_http_backend(capsys):
    code, _, err = run_cli(capsys, "run", "--backend", "openai", "--url", closed_port_url(), "--model", "m", "--prompt", "a\udcff")
    assert code == 2 and "--prompt is not UTF-8 text (byte 0xff at offset 1)" in one_error(err)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e-300", "101"])
def test_a_temperature_flag_out_of_range_is_refused(capsys, value):
    code, _, err = run_cli(capsys, "run", "--prompt", "hi", f"--temperature={value}")
    assert code == 2
    assert one_error(err).startswith("gearterm: error: --temperature must be 0 (greedy) or a number from 0.01 to 100, not")


def test_a_nan_temperature_in_the_config_is_reported_with_its_line_and_the_reply_runs(capsys, tmp_path, stories_hf):
    config = tmp_path / "config.toml"
    config.write_text("[generation]\ntemperature = nan\n")
    code, out, err = run_cli(capsys, "run", "--config", str(config), "--model", str(stories_hf), "--prompt", "Once", "--max-tokens", "3")
    assert code == 0 and out.strip()
    assert err.splitlines()[0] == (
        f"gearterm: {config}:2: generation.temperature must be 0 (greedy) or a number from 0.01 to 100, "
        "not nan; using the default"
    )
    assert "3 tokens (length)" in err


@pytest.mark.parametrize("seed", ["99999999999999999999999", "-1", "4294967296"])
def test_a_seed_outside_every_generators_range_is_refused(capsys, seed):
    code, _, err = run_cli(capsys, "run", "--prompt", "hi", "--seed", seed)
    assert code == 2 and f"--seed must be a whole number from 0 to 4294967295, not {seed}" in one_error(err)


def test_the_largest_seed_samples(capsys, stories_hf):
    argv = ("run", "--model", str(stories_hf), "--prompt", "Once", "--max-tokens", "16", "--temperature", "1", "--seed", "4294967295", "--json")
    runs = [run_cli(capsys, *argv), run_cli(capsys, *argv), run_cli(capsys, *argv[:-2], "0", "--json")]
    assert [code for code, _, _ in runs] == [0, 0, 0]
    first, again, other = ([json.loads(line)["token_id"] for line in out.splitlines()[:-1]] for _, out, _ in runs)
    assert first == again and first != other  # the seed is used: the sample repeats, and another seed differs


@pytest.mark.parametrize("keep", [1000, 600_000], ids=["header", "tensors"])
def test_a_gguf_file_cut_short_is_named_and_called_truncated(capsys, tmp_path, keep):
    """A download that stopped early: cut in its header or in its tensors, the one line names
    the file (not its folder) and says what is likely wrong with it."""
    model = tmp_path / "cut.gguf"
    model.write_bytes(_need(STORIES_GGUF).read_bytes()[:keep])
    code, _, err = run_cli(capsys, "run", "--model", str(model), "--prompt", "hi")
    assert code == 2
    assert one_error(err).startswith(f"gearterm: error: could not read {model} as GGUF (is it truncated or damaged?): ")


def test_a_model_folder_without_tokenizer_files_names_them(capsys, tmp_path, stories_hf):
    model = tmp_path / "no-tokenizer"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (model / name).write_bytes((stories_hf / name).read_bytes())
    code, _, err = run_cli(capsys, "run", "--model", str(model), "--prompt", "hi")
    assert code == 2
    assert one_error(err) == (
        f"gearterm: error: {model} has no tokenizer files (tokenizer.json, *.model, *.tiktoken, vocab.json, vocab.txt): "
        "copy them from where the model came from into that folder"
    )


@pytest.fixture(scope="module")
def not_causal_models(tmp_path_factory):
    """Tiny random BERT (masked LM), T5 (encoder-decoder) and a classifier, saved as safetensors with a vocabulary."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        T5Config,
        T5ForConditionalGeneration,
    )

    bert = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    t5 = T5Config(vocab_size=32, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    models = {}
    for name, model in {
        "bert": BertForMaskedLM(bert),
        "t5": T5ForConditionalGeneration(t5),
        "classifier": BertForSequenceClassification(bert),
    }.items():
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefgh"]))
        models[name] = path
    return models


@pytest.mark.parametrize(
    "name, what",
    [
        ("bert", "a masked language model (BertForMaskedLM)"),
        ("t5", "an encoder-decoder model (T5ForConditionalGeneration)"),
        ("classifier", "a classifier (BertForSequenceClassification)"),
    ],
)
def test_a_model_that_is_not_a_causal_lm_is_refused_in_one_line(capsys, not_causal_models, name, what):
    path = not_causal_models[name]
    code, _, err = run_cli(capsys, "run", "--model", str(path), "--prompt", "hi")
    assert code == 2
    assert one_error(err) == (
        f"gearterm: error: {path} holds {what}, not a causal language model: gearterm runs decoder-only models "
        "that generate text token by token (Llama, Qwen, Mistral, Gemma, Phi, GPT-2 ...)"
    )


def test_a_silent_server_trips_the_timeout_flag(capsys):
    silence = Hold()
    server = ollama_server(silence)
    try:
        code, _, err = run_cli(capsys, "run", "--backend", "ollama", "--url", server.url, "--model", "m", "--prompt", "hi", "--timeout", "0.5")
    finally:
        silence.release.set()
        server.stop()
    assert code == 1  # a runtime fault
    assert one_error(err) == f"gearterm: error: Ollama at {server.url} sent nothing for 0.5 s (read timeout)"


def test_run_reads_the_servers_timeout_from_the_config(capsys, tmp_path):
    silence = Hold()
    server = ollama_server(silence)
    config = tmp_path / "config.toml"
    config.write_text(f'backend = "ollama"\nmodel = "m"\nurl = "{server.url}"\ntimeout_s = 0.5\n')
    try:
        code, _, err = run_cli(capsys, "run", "--config", str(config), "--prompt", "hi")
    finally:
        silence.release.set()
        server.stop()
    assert code == 1 and "sent nothing for 0.5 s (read timeout)" in one_error(err)


def test_a_servers_error_is_printed_once(capsys):
    server = ollama_server(ollama_line("Hi"), json.dumps({"error": "the model ran out of memory"}).encode() + b"\n")
    try:
        code, out, err = run_cli(capsys, "run", "--backend", "ollama", "--url", server.url, "--model", "m", "--prompt", "hi")
    finally:
        server.stop()
    assert code == 1 and out.startswith("Hi")  # the partial reply is kept
    assert "the model ran out of memory" in one_error(err)
    assert err.count("the model ran out of memory") == 1


def test_ctrl_c_mid_reply_prints_what_was_produced(tmp_path):
    """A real process and a real SIGINT, while the server holds the reply after one token."""
    silence = Hold()
    server = ollama_server(ollama_line("Hi"), silence)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", CLI, "run", "--backend", "ollama", "--url", server.url, "--model", "m", "--prompt", "hi"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "GEARTERM_CONFIG": str(tmp_path / "none.toml")},
            # As from a terminal: a child inherits an ignored SIGINT (and Python then installs
            # no KeyboardInterrupt for it), and a test earlier in the session may leave it so.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert child.stdout.read(2) == b"Hi"  # the first token is out: the reply is streaming
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        silence.release.set()
        server.stop()
    assert child.returncode == 130
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("-- 1 tokens (interrupted), ") and "[ollama m:latest]" in lines[0]


def test_a_huge_prompt_comes_from_a_file_or_stdin(capsys, tmp_path, monkeypatch, stories_hf):
    prompt = "Once upon a time there was a cat. " * 6000  # about 200,000 characters
    path = tmp_path / "prompt.txt"
    path.write_text(prompt)
    code, out, err = run_cli(capsys, "run", "--model", str(stories_hf), "--prompt-file", str(path), "--max-tokens", "2")
    assert code == 0
    assert err.splitlines()[0] == "gearterm: warning: the newest message is too long for the 512-token context: the model sees its last 510 tokens"
    monkeypatch.setattr(sys, "stdin", open(path, encoding="utf-8"))
    assert run_cli(capsys, "run", "--model", str(stories_hf), "--prompt", "-", "--max-tokens", "2")[1] == out


def test_an_unreadable_prompt_file_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "--prompt-file", str(tmp_path / "absent.txt"))
    assert code == 2 and one_error(err) == f"gearterm: error: cannot read --prompt-file {tmp_path / 'absent.txt'}: No such file or directory"
