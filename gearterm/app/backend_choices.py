"""What the backend picker offers (configured and discovered), and how a choice becomes a backend."""

from __future__ import annotations

from gearterm.backends.base import Backend
from gearterm.config import SERVER_BACKENDS, BackendEntry, Config, ServerOptions

LOCAL_BACKENDS = ("hf", "mlx")  # compute in this process; the others talk to a server


def startup_entry(config: Config) -> BackendEntry:
    """The backend the app opens with: the config file's, with the command-line flags applied."""
    label = f"{config.backend}: {config.model or 'default model'}"
    return BackendEntry(label=label, backend=config.backend, model=config.model, url=config.url, server=config.server)


def discover_choices(config: Config) -> tuple[list[BackendEntry], list[str]]:
    """Configured entries first, then what is found here (the Hugging Face cache, Ollama's list);
    notes say what could not be reached.

    Runs in a worker thread: asking an Ollama server may take a moment."""
    from gearterm.backends.registry import available_backends

    entries = [startup_entry(config), *config.backends]
    notes: list[str] = []
    available = available_backends()
    for name in LOCAL_BACKENDS:
        if name in available:
            entries.append(BackendEntry(label=f"{name}: default model", backend=name))
    from gearterm.models import list_models

    ollama_url = config.ollama_url if "ollama" in available else None
    found = list_models(ollama_url)
    for model in found:
        # The pocket model is already there as each local backend's default model.
        if model.source != "pocket" and model.backend in available:
            url = model.location if model.source == "ollama" else ""  # the server it was found on
            entries.append(BackendEntry(f"{model.backend}: {model.name}", model.backend, model.name, url))
    if ollama_url and not any(model.source == "ollama" for model in found):
        notes.append(f"no Ollama models from {ollama_url}")
    unique: dict[tuple[str, str, str], BackendEntry] = {}
    for entry in entries:
        unique.setdefault((entry.backend, entry.model, entry.url), entry)
    return list(unique.values()), notes


def create_from_entry(entry: BackendEntry, config: Config) -> Backend:
    """A backend, not yet loaded; local backends with no model get the default model, server
    backends the entry's ServerOptions."""
    from gearterm.backends.registry import create_backend

    model, url = entry.model, None
    options = {}
    if entry.backend in LOCAL_BACKENDS:
        from gearterm.models import default_model

        model = default_model(entry.model or None)
        options.update(trust_remote_code=config.trust_remote_code, gate=config.gate)
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
