"""Default model resolution and `gearterm models`: pocket model, Hugging Face cache, Ollama."""

from pathlib import Path

from loopback_http import LoopbackServer, Reply, closed_port_url

from gearterm.cli import main as cli_main
from gearterm.models import POCKET_MODEL_DIR, default_model, huggingface_cache_models, list_models

OLLAMA_TAGS = {
    "models": [
        {"name": "llama3.2:1b", "model": "llama3.2:1b", "size": 1_321_098_329, "digest": "baf6a787fdff"},
        {"name": "qwen3:0.6b-q8_0", "model": "qwen3:0.6b-q8_0", "size": 639_446_912, "digest": "7df6b6e09427"},
    ]
}


def fake_hub_repo(cache: Path, folder: str, files: dict[str, bytes], revision: str = "a" * 40) -> None:
    """A repository laid out as huggingface_hub stores it: blobs, a snapshot of links, refs/main."""
    repo = cache / folder
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for i, (name, data) in enumerate(files.items()):
        blob = repo / "blobs" / f"{i:040x}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def test_an_explicit_model_wins_over_the_pocket_model():
    assert default_model("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert default_model("/models/llama") == "/models/llama"


def test_no_configured_model_means_the_pocket_model():
    assert default_model(None) == str(POCKET_MODEL_DIR)
    assert default_model("") == str(POCKET_MODEL_DIR)  # the config file's "" = the packaged default


def test_with_no_cache_and_no_server_only_the_pocket_model_is_listed(tmp_path):
    entries = list_models(None, hf_cache=tmp_path / "no-such-cache")
    assert [(e.name, e.source, e.backend) for e in entries] == [("pocket", "pocket", "hf")]
    assert entries[0].location == str(POCKET_MODEL_DIR)
    assert entries[0].size_bytes > 1_000_000


def test_an_empty_cache_directory_lists_nothing(tmp_path):
    assert huggingface_cache_models(tmp_path) == []


def test_cached_model_repositories_are_listed_and_datasets_are_not(tmp_path):
    fake_hub_repo(tmp_path, "models--acme--tiny-llama", {"config.json": b"{}", "model.safetensors": b"x" * 1000})
    fake_hub_repo(tmp_path, "datasets--acme--stories", {"data.txt": b"once upon a time"})
    entries = huggingface_cache_models(tmp_path)
    assert [(e.name, e.source, e.backend) for e in entries] == [("acme/tiny-llama", "huggingface cache", "hf")]
    assert entries[0].size_bytes == 1002
    assert Path(entries[0].location, "config.json").is_file()


def test_ollama_models_are_listed_when_a_server_answers(tmp_path):
    """No Ollama binary exists here: a loopback server answers GET /api/tags the way Ollama does."""
    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda body: Reply.json(OLLAMA_TAGS)
    try:
        entries = list_models(server.url, hf_cache=tmp_path)
    finally:
        server.stop()
    ollama = [(e.name, e.backend, e.location, e.size_bytes) for e in entries if e.source == "ollama"]
    assert ollama == [
        ("llama3.2:1b", "ollama", server.url, 1_321_098_329),
        ("qwen3:0.6b-q8_0", "ollama", server.url, 639_446_912),
    ]
    assert entries[0].name == "pocket"


def test_no_ollama_entries_when_nothing_listens(tmp_path):
    entries = list_models(closed_port_url(), hf_cache=tmp_path)
    assert [e.source for e in entries] == ["pocket"]


def test_no_ollama_entries_when_the_server_answers_with_an_error(tmp_path):
    """A loopback server stands in for a broken Ollama (no Ollama binary exists here)."""
    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda body: Reply.json({"error": "internal"}, status=500)
    try:
        entries = list_models(server.url, hf_cache=tmp_path)
    finally:
        server.stop()
    assert [e.source for e in entries] == ["pocket"]


def test_gearterm_models_prints_a_table(capsys):
    """A loopback server plays Ollama (no Ollama binary exists here)."""
    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda body: Reply.json(OLLAMA_TAGS)
    try:
        assert cli_main(["models", "--ollama-url", server.url]) == 0
    finally:
        server.stop()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "SIZE", "WHERE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert str(POCKET_MODEL_DIR) in rows["pocket"]
    assert "1.3 GB" in rows["llama3.2:1b"] and server.url in rows["llama3.2:1b"]
    assert "639.4 MB" in rows["qwen3:0.6b-q8_0"]


def test_the_backend_picker_offers_ollamas_models_once_each():
    """A loopback server plays Ollama (no Ollama binary exists here)."""
    from gearterm.app.backend_choices import discover_choices
    from gearterm.config import Config

    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda body: Reply.json(OLLAMA_TAGS)
    try:
        entries, notes = discover_choices(Config(ollama_url=server.url))
    finally:
        server.stop()
    ollama = [(e.label, e.model) for e in entries if e.backend == "ollama"]
    assert ollama == [("ollama: llama3.2:1b", "llama3.2:1b"), ("ollama: qwen3:0.6b-q8_0", "qwen3:0.6b-q8_0")]
    pocket = [e.backend for e in entries if "pocket model" in e.label]
    assert pocket == sorted(set(pocket))  # once per local backend: the model they run when none is named
    assert notes == []


def test_the_backend_picker_notes_when_ollama_does_not_answer():
    from gearterm.app.backend_choices import discover_choices
    from gearterm.config import Config

    url = closed_port_url()
    entries, notes = discover_choices(Config(ollama_url=url))
    assert not any(e.backend == "ollama" and e.model for e in entries)
    [note] = notes
    assert note.startswith(f"Ollama at {url} did not answer (ConnectError")


def test_the_backend_picker_tells_an_empty_ollama_from_one_that_is_down():
    from gearterm.app.backend_choices import discover_choices
    from gearterm.config import Config

    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda body: Reply.json({"models": []})
    try:
        _, notes = discover_choices(Config(ollama_url=server.url))
    finally:
        server.stop()
    assert notes == [f"ollama server at {server.url} lists no models"]


def test_the_backend_picker_asks_the_server_given_with_url_not_the_default():
    from gearterm.app.backend_choices import discover_choices
    from gearterm.config import Config

    server = LoopbackServer()
    server.routes[("GET", "/api/tags")] = lambda body: Reply.json(OLLAMA_TAGS)
    try:
        config = Config(backend="ollama", model="llama3.2:1b", url=server.url, ollama_url=closed_port_url())
        entries, notes = discover_choices(config)
    finally:
        server.stop()
    assert notes == [] and server.paths() == ["/api/tags"]  # the default URL was never asked
    assert ("ollama: qwen3:0.6b-q8_0", server.url) in [(e.label, e.url) for e in entries]


def test_the_backend_picker_lists_an_openai_compatible_servers_models():
    from gearterm.app.backend_choices import discover_choices
    from gearterm.config import Config

    server = LoopbackServer()
    server.routes[("GET", "/v1/models")] = lambda body: Reply.json({"object": "list", "data": [{"id": "qwen2.5-7b"}, {"id": "smollm2"}]})
    try:
        config = Config(backend="openai", model="smollm2", url=f"{server.url}/v1", ollama_url=closed_port_url())
        entries, notes = discover_choices(config)
    finally:
        server.stop()
    assert entries[0].label == "openai: smollm2"  # the one asked for, listed once
    openai = [(e.label, e.model, e.url) for e in entries[1:] if e.backend == "openai"]
    assert openai == [("openai: qwen2.5-7b", "qwen2.5-7b", server.url)]
    assert [n for n in notes if "OpenAI" in n] == []


def test_the_pocket_model_is_named_not_called_the_default():
    from gearterm.app.backend_choices import startup_entry
    from gearterm.config import Config

    assert startup_entry(Config()).label == "hf: pocket model (packaged)"
    assert startup_entry(Config(model="/models/llama")).label == "hf: /models/llama"
