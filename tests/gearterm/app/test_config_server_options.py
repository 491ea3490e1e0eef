"""Server options (entropy_source, top_logprobs, timeout_s, vocab_size, gear_models) in the
config file: read at the top level and per [backends.LABEL], checked with file and line, and
passed on to the Ollama and OpenAI-compatible backends the app creates."""

import inspect
import re
from pathlib import Path

import httpx
import pytest
from loopback_http import Hold, LoopbackServer, Reply

from gearterm.backends.http_backend import HTTPBackend
from gearterm.backends.ollama import OllamaBackend
from gearterm.backends.openai_compat import OpenAIBackend
from gearterm.app.backend_choices import create_from_entry, startup_entry
from gearterm.config import BackendEntry, Config, ServerOptions, load_config


def _load(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def _where(problems) -> set[tuple[int | None, str]]:
    """Each problem as (line, the dotted key its message starts with)."""
    return {(p.line, p.message.split(" ")[0]) for p in problems}


def test_the_defaults_are_the_http_backends_own():
    base = inspect.signature(HTTPBackend.__init__).parameters
    ollama = inspect.signature(OllamaBackend.__init__).parameters
    default = ServerOptions()
    assert default.entropy_source == base["entropy_source"].default
    assert default.top_logprobs == base["top_logprobs"].default == ollama["top_logprobs"].default
    assert default.timeout_s == base["read_timeout_s"].default
    assert base["vocab_size"].default is None and default.vocab_size == 0  # 0 = the server's figure
    assert base["gear_models"].default is None and default.gear_models == {}  # empty = proposed
    assert Config().server == default


def test_top_level_and_per_server_options_are_read(tmp_path):
    config, problems = _load(
        tmp_path,
        """backend = "ollama"
model = "llama3.1:8b-instruct-q4_K_M"
entropy_source = "upper"
top_logprobs = 10
timeout_s = 60          # an integer is fine for seconds
vocab_size = 128256
gear_models = { low = "llama3.1:8b-instruct-q4_K_M", high = "llama3.1:8b-instruct-fp16" }
[backends.gpu-box]
backend = "openai"
model = "qwen"
url = "http://gpu-box:8000/v1"
top_logprobs = 50
timeout_s = 2.5
[backends.gpu-box.gear_models]
low = "qwen-awq"
mid = "qwen-fp8"
high = "qwen"
""",
    )
    assert problems == []
    assert config.server == ServerOptions(
        entropy_source="upper",
        top_logprobs=10,
        timeout_s=60.0,
        vocab_size=128256,
        gear_models={"low": "llama3.1:8b-instruct-q4_K_M", "high": "llama3.1:8b-instruct-fp16"},
    )
    [box] = config.backends
    assert (box.label, box.backend, box.url) == ("gpu-box", "openai", "http://gpu-box:8000/v1")
    assert box.server == ServerOptions(
        top_logprobs=50, timeout_s=2.5, gear_models={"low": "qwen-awq", "mid": "qwen-fp8", "high": "qwen"}
    )


def test_bad_values_are_reported_with_their_lines_and_the_defaults_used(tmp_path):
    config, problems = _load(
        tmp_path,
        """backend = "openai"
entropy_source = "middle"
top_logprobs = 0
timeout_s = -1
vocab_size = "big"
gear_models = { turbo = "x", mid = "" }
[backends.local]
backend = "ollama"
top_logprobs = 21
timeout_s = "soon"
vocab_size = 5
gear_models = "fast"
""",
    )
    assert _where(problems) == {
        (2, "entropy_source"),
        (3, "top_logprobs"),
        (4, "timeout_s"),
        (5, "vocab_size"),
        (6, "unknown"),  # gear turbo, on the inline table's line
        (6, "gear_models.mid"),
        (9, "backends.local.top_logprobs"),
        (10, "backends.local.timeout_s"),
        (11, "backends.local.vocab_size"),
        (12, "backends.local.gear_models"),
    }
    text = {p.line: p.message for p in problems if p.message.split(" ")[0] != "unknown"}
    assert "must be one of lower, upper" in text[2] and "'middle'" in text[2]
    assert "at least 1" in text[3]
    assert "above 0" in text[4]
    assert "must be an integer" in text[5]
    assert "at most 20 for Ollama" in text[9]
    assert "more than top_logprobs" in text[11]
    assert all(str(p).startswith(f"{tmp_path / 'config.toml'}:{p.line}: ") for p in problems)
    assert config.server == ServerOptions()
    assert config.backends[0].server == ServerOptions()


def test_an_openai_server_takes_more_than_twenty_alternatives(tmp_path):
    config, problems = _load(tmp_path, 'backend = "openai"\ntop_logprobs = 100\n')
    assert problems == [] and config.server.top_logprobs == 100


def test_a_gear_in_a_gear_models_table_is_reported_on_its_own_line(tmp_path):
    config, problems = _load(
        tmp_path, '[backends.o]\nbackend = "ollama"\n[backends.o.gear_models]\nlow = "a:q4_0"\nfast = "b"\n'
    )
    assert _where(problems) == {(5, "unknown")}
    assert config.backends[0].server.gear_models == {"low": "a:q4_0"}


def test_server_options_for_a_local_backend_are_reported_not_ignored(tmp_path):
    config, problems = _load(
        tmp_path,
        """top_logprobs = 5
[backends.pocket]
backend = "hf"
gear_models = { low = "x" }
""",
    )
    assert _where(problems) == {(1, "top_logprobs"), (4, "backends.pocket.gear_models")}
    assert all("for the ollama and openai backends, not 'hf'" in p.message for p in problems)
    assert config.server == ServerOptions() and config.backends[0].server == ServerOptions()


def test_an_unknown_key_names_the_server_options_among_the_known(tmp_path):
    _, [problem] = _load(tmp_path, '[backends.o]\nbackend = "ollama"\ntimeout = 5\n')
    assert problem.line == 3 and "timeout_s" in problem.message and "gear_models" in problem.message
    assert "server" not in problem.message.split("known here: ")[1].split(", ")


def test_an_entrys_options_reach_the_openai_backend(tmp_path):
    config, problems = _load(
        tmp_path,
        """[backends.box]
backend = "openai"
model = "qwen"
url = "http://127.0.0.1:8000/v1"
entropy_source = "upper"
top_logprobs = 40
timeout_s = 7.5
vocab_size = 151936
gear_models = { low = "qwen-awq" }
""",
    )
    assert problems == []
    backend = create_from_entry(config.backends[0], config)
    assert isinstance(backend, OpenAIBackend)
    assert backend.url == "http://127.0.0.1:8000"
    assert backend.entropy_source == "upper"
    assert backend.top_logprobs == 40
    assert backend.timeout.read == 7.5 and backend.timeout.connect == 5.0
    assert backend.configured_vocab_size == 151936
    assert backend.configured_gear_models == {"low": "qwen-awq"}
    assert backend.chat_request("qwen", [{"role": "user", "content": "hi"}], _params())[1]["top_logprobs"] == 40


def test_the_top_level_options_reach_the_startup_ollama_backend(tmp_path):
    config, problems = _load(
        tmp_path, 'backend = "ollama"\nmodel = "llama3.2"\ntop_logprobs = 8\ntimeout_s = 30\n'
    )
    assert problems == []
    backend = create_from_entry(startup_entry(config), config)
    assert isinstance(backend, OllamaBackend)
    assert (backend.top_logprobs, backend.timeout.read, backend.entropy_source) == (8, 30.0, "lower")
    assert backend.configured_vocab_size is None and backend.configured_gear_models == {}


def test_a_discovered_entry_gets_the_backends_defaults():
    backend = create_from_entry(BackendEntry("ollama: m", "ollama", "m", "http://127.0.0.1:11434"), Config())
    reference = OllamaBackend("m")
    assert (backend.top_logprobs, backend.entropy_source) == (reference.top_logprobs, reference.entropy_source)
    assert backend.timeout == reference.timeout == httpx.Timeout(300.0, connect=5.0)


def _params():
    from gearterm.backends.base import GenerationParams

    return GenerationParams(max_tokens=4)


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_a_timeout_from_the_config_is_the_one_a_silent_server_trips(backend):
    """A loopback server (tests/loopback_http.py) goes silent mid-reply for longer than the
    configured timeout_s: the reply ends in a read-timeout error naming those seconds."""
    listing = {"ollama": ("/api/tags", {"models": [{"name": "m"}]}), "openai": ("/v1/models", {"data": [{"id": "m"}]})}
    chat = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}
    server, silence = LoopbackServer(), Hold()
    try:
        path, models = listing[backend]
        server.routes[("GET", path)] = lambda _: Reply.json(models)
        server.routes[("POST", chat[backend])] = lambda _: Reply(steps=[silence])
        entry = BackendEntry("x", backend, "m", server.url, ServerOptions(timeout_s=0.3))
        created = create_from_entry(entry, Config())
        created.load()
        events = [event async for event in created.stream([{"role": "user", "content": "hi"}], _params())]
    finally:
        silence.release.set()
        server.stop()
    done = events[-1]
    assert done.reason == "error" and "sent nothing for 0.3 s (read timeout)" in done.error


def test_the_readme_example_reads_without_problems(tmp_path):
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    [example] = [block for block in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[backends." in block]
    config, problems = _load(tmp_path, example)
    assert problems == []
    assert config.server.gear_models.keys() == {"low", "mid", "high"}
    assert [(e.label, e.server.top_logprobs) for e in config.backends] == [("gpu-box", 50)]


def test_a_url_set_for_a_local_backend_is_not_passed_to_it():
    """Found by the config fuzz (test_fuzz_inputs.py): `url = "..."` with backend hf raised a TypeError."""
    from gearterm.backends.hf import HFBackend

    backend = create_from_entry(BackendEntry("pocket", "hf", url="http://127.0.0.1:1"), Config())
    assert isinstance(backend, HFBackend)
