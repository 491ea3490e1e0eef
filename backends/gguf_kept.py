"""A GGUF file's config and tokenizer, converted by transformers once and kept in the user's
cache dir, so that the next load of the same file parses it once (for its weights), not three times.

Why: transformers reads a GGUF's config and its tokenizer each with a parse of the file by gguf's
reader, which reads every field, a chat model's whole vocabulary with them. For SmolLM2-135M's
Q4_1 file on two cores: config 4.2 s and tokenizer 5.2 s converted, 0.38 s both read back as the
files a model directory holds (config.json, tokenizer.json and its config, the chat template).

A kept copy is read only for the same file (absolute path, size, modification time) and the same
transformers version; anything else converts again, and the new copy replaces the path's older
ones. Where the cache dir cannot be written the load goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path


def kept_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gearterm")) / "gguf"


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:20]


def _kept_dir(file: Path) -> Path:
    """The folder of this file's copies (one a path), then of this version of it."""
    import transformers

    stat = file.stat()
    return kept_root() / _digest(str(file.resolve())) / _digest([stat.st_size, stat.st_mtime_ns, transformers.__version__])


def _keep(converted, where: Path) -> None:
    """Save `converted` (a config or a tokenizer) to `where` whole or not at all: written beside
    it, then renamed, so a load cut short never leaves half a copy to be read. Copies of the same
    path's file as it was before go: one copy a path."""
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=where.parent, prefix=".writing-"))
        converted.save_pretrained(scratch)
        try:
            scratch.rename(where)
        except OSError:  # another load kept it first
            shutil.rmtree(scratch, ignore_errors=True)
        for older in where.parent.parent.iterdir():  # the path's copies of its file as it was
            if older != where.parent:
                shutil.rmtree(older, ignore_errors=True)
    except OSError:
        pass  # a read-only or full cache dir: this load converted, the next one will again


def _kept_or_converted(auto, model_dir: Path, gguf_file: str, part: str, saved_file: str):
    """`auto` (AutoConfig or AutoTokenizer) read from the file's kept copy of `part`, else
    converted from the file and kept. `saved_file` is one that save_pretrained writes."""
    where = _kept_dir(model_dir / gguf_file) / part
    if (where / saved_file).is_file():
        try:
            return auto.from_pretrained(where)
        except Exception:  # a damaged copy (whatever transformers raises for it): convert again
            shutil.rmtree(where, ignore_errors=True)
    converted = auto.from_pretrained(model_dir, gguf_file=gguf_file)
    _keep(converted, where)
    return converted


def gguf_config(model_dir: Path, gguf_file: str):
    """The file's config: the kept copy, else converted (and kept)."""
    from transformers import AutoConfig

    config = _kept_or_converted(AutoConfig, model_dir, gguf_file, "config", "config.json")
    config._name_or_path = str(model_dir)  # as converted; a kept copy would name the cache's folder
    return config


def gguf_tokenizer(model_dir: Path, gguf_file: str):
    """The file's tokenizer: the kept copy, else converted (and kept)."""
    from transformers import AutoTokenizer

    return _kept_or_converted(AutoTokenizer, model_dir, gguf_file, "tokenizer", "tokenizer_config.json")
