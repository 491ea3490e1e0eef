"""What the backend picker offers (configured and discovered), and how a choice becomes a backend."""

from __future__ import annotations

from pathlib import Path

from gearterm.backends.base import Backend
from gearterm.config import SERVER_BACKENDS, BackendEntry, Config, ServerOptions

LOCAL_BACKENDS = ("hf", "mlx")  # compute in this process; the others talk to a server


def model_title(backend: str, model: str) -> str:
    """A model as the picker names it: local backends with no model run the packaged pocket model."""
    if model:
        return model
    return "pocket model (packaged)" if backend in LOCAL_BACKENDS else "no model named"


def loading_title(entry: BackendEntry) -> str:
    """The entry as the loading line names it: a model on disk by its file or directory name
    (the status bar shows the whole path), so that an 80-column line has room for the step."""
    model = entry.model
    if model and entry.label == f"{entry.backend}: {model}" and Path(model).expanduser().exists():
        return f"{entry.backend}: {Path(model).name}"
    return entry.label


def startup_entry(config: Config) -> BackendEntry:
    """The backend the app opens with: the config file's, with the command-line flags applied."""
    label = f"{config.backend}: {model_title(config.backend, config.model)}"
    return BackendEntry(label=label, backend=config.backend, model=config.model, url=config.url, server=config.server)


def discover_choices(config: Config) -> tuple[list[BackendEntry], list[str]]:
    """Configured entries first, then what is found here: the pocket model, the Hugging Face
    cache, and the model lists of the servers the config names (Ollama at --url or
    ollama_url, an OpenAI-compatible server at --url); notes say which server could not be
    asked, or answered with an empty list.

    Runs in a worker thread: asking a server may take a moment."""
    from gearterm.backends.registry import available_backends
    from gearterm.models import ask_ollama, ask_openai_server, list_models

    entries = [startup_entry(config), *config.backends]
    notes: list[str] = []
    available = available_backends()
    for name in LOCAL_BACKENDS:
        if name in available:
            entries.append(BackendEntry(label=f"{name}: {model_title(name, '')}", backend=name))
    for model in list_models(None):  # the Hugging Face cache; the pocket model is already there
        if model.source != "pocket" and model.backend in available:
            entries.append(BackendEntry(f"{model.backend}: {model.name}", model.backend, model.name))
    ask = {"ollama": ask_ollama, "openai": ask_openai_server}
    for backend, url in _servers(config):
        if backend not in available:
            continue
        answer = ask[backend](url)
        if answer.problem:
            notes.append(answer.problem)
        elif not answer.models:
            notes.append(f"{backend} server at {url} lists no models")
        entries += [BackendEntry(f"{backend}: {m.name}", backend, m.name, m.location) for m in answer.models]
    unique: dict[tuple[str, str, str], BackendEntry] = {}
    for entry in entries:
        # ".../v1" and "..." are one OpenAI-compatible server (requests add /v1 themselves).
        unique.setdefault((entry.backend, entry.model, entry.url.rstrip("/").removesuffix("/v1")), entry)
    return list(unique.values()), notes


def _servers(config: Config) -> list[tuple[str, str]]:
    """(backend, url) of each server to ask for its models: the startup backend's own URL where
    it is a server (--url), else Ollama's usual one; and each configured server's."""
    from gearterm.backends.openai_compat import DEFAULT_URL

    servers = [("ollama", config.url if config.backend == "ollama" and config.url else config.ollama_url)]
    if config.backend == "openai":
        servers.append(("openai", config.url or DEFAULT_URL))
    servers += [(e.backend, e.url) for e in config.backends if e.backend in SERVER_BACKENDS and e.url]
    return list(dict.fromkeys(servers))


def create_from_entry(entry: BackendEntry, config: Config) -> Backend:
    """A backend, not yet loaded; local backends with no model get the default model, server
    backends the entry's ServerOptions."""
    from gearterm.backends.registry import create_backend

    model, url = entry.model, None
    options = {}
    if entry.backend in LOCAL_BACKENDS:
        from gearterm.models import default_model

        model = default_model(entry.model or None)
        options.update(trust_remote_code=config.trust_remote_code, gate=config.gate, context=config.generation.context)
    if entry.backend == "hf":
        options.update(device=config.device, dtype=config.dtype, compile=config.compile, allow_pickle=config.allow_pickle)
    if entry.backend in SERVER_BACKENDS:
        url = entry.url or None  # a local backend has no server to point at
        options.update(server_options(entry.server))
    return create_backend(entry.backend, model, url=url, **options)


def server_options(server: ServerOptions) -> dict:
    """ServerOptions as the HTTP backends' constructor keywords."""
    return {
        "entropy_source": server.entropy_source,
        "top_logprobs": server.top_logprobs,
        "read_timeout_s": server.timeout_s,
        "vocab_size": server.vocab_size or None,
        "gear_models": server.gear_models,
    }
