"""Which models gearterm can run: the pocket model it ships, the Hugging Face cache, Ollama's list.

The pocket model lives inside the installed package (see pocket/MODEL_CARD.md), so a machine
with no models, no Ollama and no network still opens the app on a real trained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

POCKET_MODEL_DIR = Path(__file__).resolve().parent / "pocket"
OLLAMA_TIMEOUT_S = 1.0  # a server on this machine answers at once; none must not hold up the listing


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what --model takes: a path, a Hugging Face id or an Ollama model name
    source: str  # "pocket", "huggingface cache" or "ollama"
    backend: str  # the backend that runs it: "hf" or "ollama"
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


def ollama_models(url: str) -> list[ModelEntry]:
    """Ollama's local models from GET /api/tags; none when nothing answers or the answer is odd."""
    import httpx

    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=OLLAMA_TIMEOUT_S, trust_env=False) as client:
            response = client.get(f"{base}/api/tags")
            response.raise_for_status()
            models = response.json()["models"]
            return [ModelEntry(m["name"], "ollama", "ollama", base, m.get("size")) for m in models]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []
