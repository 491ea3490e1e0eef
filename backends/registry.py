"""Backends by name: the CLI and the app create them here, importing each only when used."""

from __future__ import annotations

import importlib
import importlib.util

from gearterm.backends.base import Backend, BackendError

# name -> (module, class, what it needs to import)
BACKENDS = {
    "hf": ("gearterm.backends.hf", "HFBackend", "transformers"),
    "mlx": ("gearterm.backends.mlx", "MLXBackend", "mlx_lm"),
    "ollama": ("gearterm.backends.ollama", "OllamaBackend", "httpx"),
    "openai": ("gearterm.backends.openai_compat", "OpenAIBackend", "httpx"),
}


def available_backends() -> list[str]:
    """Backends whose code and runtime both import here (MLX only where mlx does)."""
    return [
        name
        for name, (module, _, needs) in BACKENDS.items()
        if importlib.util.find_spec(needs) is not None and importlib.util.find_spec(module) is not None
    ]


def create_backend(name: str, model: str, url: str | None = None, **options) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name not in available_backends():
        raise BackendError(f"the {name} backend is not available here: install gearterm's extra for it")
    module, cls, _ = BACKENDS[name]
    backend_class = getattr(importlib.import_module(module), cls)
    if url is not None:
        options["url"] = url
    return backend_class(model, **options)
