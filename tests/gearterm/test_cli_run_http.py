"""`gearterm run` through the HTTP backends: JSON token lines carry the top-k entropy bounds.

The OpenAI case talks to a real llama.cpp server; Ollama (no binary in the registries here)
is played by the scripted loopback server, with a model whose vocabulary size it does not
report, so the upper bound is null."""

import json
import math

import pytest

from gearterm.cli import main
from conftest import STORIES_GGUF
from loopback_http import LoopbackServer, Reply, closed_port_url


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("named", [True, False], ids=["model-named", "the-servers-one-model"])
def test_openai_json_lines_have_bounds(capsys, llama_server, named):
    """With no --model, the one model a llama.cpp server lists is the one asked."""
    model = ["--model", str(STORIES_GGUF)] if named else []
    code, out, err = run_cli(
        capsys, "run", "--backend", "openai", "--url", llama_server, *model,
        "--prompt", "Once upon a time", "--max-tokens", "10", "--json",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    tokens, summary = lines[:-1], lines[-1]["summary"]
    assert len(tokens) == 10 and summary["tokens"] == 10 and summary["backend"] == "openai"
    for t in tokens:
        assert t["entropy_bits"] is None
        assert 0 <= t["entropy_bits_lower"] <= t["entropy_bits_upper"] <= 9  # log2(512)
        assert 0 <= t["missing_mass"] < 1
    assert "".join(t["text"] for t in tokens).startswith(", there was a little girl")
    assert summary["mean_entropy_bits"] == sum(t["entropy_bits_lower"] for t in tokens) / 10


def test_ollama_json_lines_without_a_vocabulary_size(capsys):
    server = LoopbackServer()
    try:
        server.routes[("GET", "/api/tags")] = lambda _: Reply.json({"models": [{"name": "tiny:latest"}]})
        server.routes[("POST", "/api/show")] = lambda _: Reply.json({"model_info": {}})
        token = {"token": "Hi", "logprob": math.log(0.5), "top_logprobs": [{"token": "Hi", "logprob": math.log(0.5)}]}
        lines = [
            {"message": {"role": "assistant", "content": "Hi"}, "done": False, "logprobs": [token]},
            {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
        ]
        server.routes[("POST", "/api/chat")] = lambda _: Reply(steps=[json.dumps(x).encode() + b"\n" for x in lines])
        code, out, err = run_cli(capsys, "run", "--backend", "ollama", "--url", server.url, "--model", "tiny", "--prompt", "hi", "--json")
    finally:
        server.stop()
    assert code == 0, err
    row, summary = (json.loads(line) for line in out.splitlines())
    assert row == {
        "text": "Hi", "token_id": None, "gear": "high", "entropy_bits": None,
        "entropy_bits_lower": 1.0, "entropy_bits_upper": None, "missing_mass": 0.5,  # p = r = 0.5: 2 x 0.5 bits
    }
    assert summary["summary"]["tokens"] == 1
    assert "vocabulary size" in err  # the missing upper bound is said, not hidden


def test_unreachable_server_is_one_clean_error(capsys):
    code, out, err = run_cli(capsys, "run", "--backend", "ollama", "--url", closed_port_url(), "--model", "x", "--prompt", "hi")
    assert code == 1  # a runtime fault, not bad input
    assert len(err.strip().splitlines()) == 1 and err.strip().startswith("gearterm: error: cannot connect to Ollama") and "ollama serve" in err
    assert "Traceback" not in err + out
