"""Which models gearterm can run: the pocket model it ships, the Hugging Face cache, and the
lists of servers (Ollama's /api/tags, an OpenAI-compatible server's /v1/models).

The pocket model lives inside the installed package (see pocket/MODEL_CARD.md), so a machine
with no models, no Ollama and no network still opens the app on a real trained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

POCKET_MODEL_DIR = Path(__file__).resolve().parent / "pocket"
SERVER_TIMEOUT_S = 1.0  # a server on this machine answers at once; none must not hold up the listing


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what --model takes: a path, a Hugging Face id or an Ollama model name
    source: str  # "pocket", "huggingface cache", "ollama" or "openai"
    backend: str  # the backend that runs it: "hf", "ollama" or "openai"
    location: str  # directory on disk, or the server's URL
    size_bytes: int | None


def default_model(configured: str | None) -> str:
    """The model to load: the one asked for (--model or the config file), else the pocket model."""
    return configured if configured else str(POCKET_MODEL_DIR)


def list_models(ollama_url: str | None, *, hf_cache: Path | None = None) -> list[ModelEntry]:
    """The pocket model, then the Hugging Face cache's models, then Ollama's (when it answers).

    `hf_cache` defaults to huggingface_hub's configured cache directory.
    """
    return [pocket_entry(), *huggingface_cache_models(hf_cache), *(ollama_models(ollama_url) if ollama_url else [])]


def pocket_entry() -> ModelEntry:
    size = sum(f.stat().st_size for f in POCKET_MODEL_DIR.iterdir() if f.is_file())
    return ModelEntry("pocket", "pocket", "hf", str(POCKET_MODEL_DIR), size)


def huggingface_cache_models(cache_dir: Path | None = None) -> list[ModelEntry]:
    """Model repositories in the local cache (datasets and spaces left out); none when there is no cache."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    entries = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        entries.append(ModelEntry(repo.repo_id, "huggingface cache", "hf", str(newest.snapshot_path), repo.size_on_disk))
    return entries


@dataclass(frozen=True)
class ServerAnswer:
    """What a server listed, or why it listed nothing: down and empty are different answers."""

    models: list[ModelEntry]
    problem: str | None  # None: the server answered (its list may be empty)


def ollama_models(url: str) -> list[ModelEntry]:
    """Ollama's local models from GET /api/tags; none when nothing answers or the answer is odd."""
    return ask_ollama(url).models


def ask_ollama(url: str) -> ServerAnswer:
    base = url.rstrip("/")
    return _ask(f"Ollama at {base}", f"{base}/api/tags", lambda data: [
        ModelEntry(m["name"], "ollama", "ollama", base, m.get("size")) for m in data["models"]
    ])


def ask_openai_server(url: str) -> ServerAnswer:
    """An OpenAI-compatible server's models from GET /v1/models (the URL with or without /v1)."""
    base = url.rstrip("/").removesuffix("/v1")
    return _ask(f"the OpenAI-compatible server at {base}", f"{base}/v1/models", lambda data: [
        ModelEntry(m["id"], "openai", "openai", base, None) for m in data["data"]
    ])


def _ask(server: str, url: str, read) -> ServerAnswer:
    import httpx

    try:
        with httpx.Client(timeout=SERVER_TIMEOUT_S, trust_env=False) as client:
            response = client.get(url)
    except httpx.HTTPError as e:
        return ServerAnswer([], f"{server} did not answer ({type(e).__name__}: {e or 'no reply'})")
    if response.status_code != 200:
        return ServerAnswer([], f"{server} answered HTTP {response.status_code} to {url}")
    try:
        return ServerAnswer(read(response.json()), None)
    except (ValueError, KeyError, TypeError):
        return ServerAnswer([], f"{server} answered {url} with something that is not a model list")
