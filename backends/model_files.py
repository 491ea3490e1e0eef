"""Finding a model on disk and refusing, with a reason, what would load unsafely or not at all."""

from __future__ import annotations

import json
from pathlib import Path

from gearterm.backends.base import BackendError


def resolve_model_dir(model: str) -> Path:
    """A local directory, or a repo id already in the Hugging Face cache. Never downloads."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise BackendError(
            f"{model} is a file but not a GGUF file; --model takes a model directory, a .gguf file or a Hugging Face id"
        )
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise BackendError(f"no such model directory: {model}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        raise BackendError(
            f"{model!r} is neither a local directory nor a model in the Hugging Face cache; "
            f"download it first (hf download {model}) or pass --model PATH"
        ) from None


def check_model_dir(path: Path, *, allow_pickle: bool, trust_remote_code: bool) -> None:
    """Refuse, with a reason, what transformers would load unsafely or not at all."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BackendError(f"{path} has no config.json: not a Hugging Face model directory")
    if not any(path.glob("*.safetensors")):
        if not any(path.glob("*.bin")):
            raise BackendError(f"{path} holds no weights (no *.safetensors files)")
        if not allow_pickle:
            raise BackendError(
                f"{path} has only pickle (.bin) weights, which can run code when loaded; "
                "convert them to safetensors, or pass --allow-pickle if you trust their source"
            )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BackendError(f"{config_file} is not valid JSON: {e}") from None
    if "auto_map" in config and not trust_remote_code:
        raise BackendError(
            f"{path} needs its own Python code to load (auto_map in config.json); "
            "read that code, then pass --trust-remote-code to run it"
        )
    check_causal_lm(path, config)
    if not any(any(path.glob(pattern)) for pattern in TOKENIZER_FILES):
        raise BackendError(
            f"{path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}): "
            "copy them from where the model came from into that folder"
        )


# What transformers builds a tokenizer from: its own JSON, a SentencePiece or tiktoken model,
# or a BPE/WordPiece vocabulary.
TOKENIZER_FILES = ("tokenizer.json", "*.model", "*.tiktoken", "vocab.json", "vocab.txt")

# What a model that does not predict the next token is, by the ending of its class name.
NOT_CAUSAL = {
    "ForMaskedLM": "a masked language model",
    "ForConditionalGeneration": "an encoder-decoder model",
    "ForSeq2SeqLM": "an encoder-decoder model",
    "ForSequenceClassification": "a classifier",
    "ForTokenClassification": "a classifier",
    "ForQuestionAnswering": "a question-answering model",
    "ForMultipleChoice": "a multiple-choice model",
}


def check_causal_lm(path: Path, config: dict) -> None:
    """Refuse a model that does not generate text token by token: transformers would build a
    causal LM on top of an encoder (BERT) with random weights, and it would chat garbage."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = config.get("architectures") or []
    if architectures:
        # Code shipped with a model (auto_map) names its own classes, in transformers' words.
        if any(a in causal_classes or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
            return
        name = architectures[0]
        kind = next((words for ending, words in NOT_CAUSAL.items() if name.endswith(ending)), f"a {name} model")
        what = f"{kind} ({name})"
    elif config.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return
    else:
        model_type = config.get("model_type")
        what = f"a {model_type} model" if model_type else "a model of no type (config.json names none)"
    raise BackendError(
        f"{path} holds {what}, not a causal language model: gearterm runs decoder-only models "
        "that generate text token by token (Llama, Qwen, Mistral, Gemma, Phi, GPT-2 ...)"
    )
