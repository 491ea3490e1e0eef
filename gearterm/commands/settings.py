"""The flags the app and `gearterm run` share: both read the same config.toml, and a flag wins
over the setting of the same name in it (checked the same way: config.setting_problem)."""

from __future__ import annotations

import argparse

from gearterm.config import Config, ConfigProblem, apply_flags, config_path, load_config
from gearterm.errors import UsageError

# argparse dest -> setting; flags left out keep the config file's value (their default is None).
MODEL_FLAGS = {
    "model": "model",
    "backend": "backend",
    "url": "url",
    "device": "device",
    "dtype": "dtype",
    "no_compile": "compile",
    "trust_remote_code": "trust_remote_code",
    "allow_pickle": "allow_pickle",
    "context": "context",
}
REPLY_FLAGS = {
    "gear": "gear",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "lossless_draft": "lossless_draft",
    "lossless_max_draft": "lossless_max_draft",
    "timeout": "timeout_s",
    "no_gate": "gate",
}
NEGATED = {"no_compile", "no_gate"}  # set means the setting is off


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose and load a model; the benches take these too."""
    parser.add_argument("--model", metavar="PATH_OR_ID", help="model directory, GGUF file, Hugging Face id or server model name")
    parser.add_argument("--backend", metavar="NAME", help="hf, mlx, ollama or openai (default: from the config, else hf)")
    parser.add_argument("--url", metavar="URL", help="server URL for the ollama and openai backends")
    parser.add_argument("--device", help="local backends: auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--dtype", help="hf: auto (default: float32 on CPU), float32, float16 or bfloat16")
    parser.add_argument(
        "--no-compile", action="store_true", default=None, help="on a GPU, skip torch.compile of the decode step (loads faster)"
    )
    parser.add_argument(
        "--trust-remote-code", action="store_true", default=None, help="run Python code shipped with the model"
    )
    parser.add_argument("--allow-pickle", action="store_true", default=None, help="load pickle .bin weights (can run code)")
    parser.add_argument(
        "--context", metavar="N", type=int,
        help="hf, mlx: positions of context the KV cache holds (default: the model's, or what fits in free memory)",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag the app and `gearterm run` share."""
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $GEARTERM_CONFIG, else config.toml in the user config dir)"
    )
    add_model_arguments(parser)
    parser.add_argument("--gear", metavar="MODE", help="gear mode: auto (default), low, mid, high or lossless")
    parser.add_argument("--lossless-draft", metavar="GEAR", help="lossless mode: the gear that drafts, low (default), mid, or auto (whichever costs less per kept token, measured)")
    parser.add_argument(
        "--lossless-max-draft", metavar="N", type=int, help="lossless mode: the longest draft a verify pass checks, 1 to 64 (default 8)"
    )
    parser.add_argument("--max-tokens", metavar="N", type=int, help="longest reply in tokens (default 256)")
    parser.add_argument("--temperature", metavar="T", type=float, help="0 = greedy (default), else 0.01 to 100")
    parser.add_argument("--top-p", metavar="P", type=float, help="nucleus sampling mass, above 0 up to 1 (default)")
    parser.add_argument("--seed", metavar="N", type=int, help="sampling seed, 0 to 4294967295 (default: random)")
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=float, help="how long a server may stay silent (ollama, openai; default 300)"
    )
    parser.add_argument(
        "--no-gate", action="store_true", default=None, help="skip the activation entropy gate (hf and mlx backends)"
    )


def flag_settings(args: argparse.Namespace, flags: dict[str, str]) -> dict:
    """The settings the flags in `flags` that were given set, by setting name."""
    settings = {}
    for dest, setting in flags.items():
        value = getattr(args, dest, None)
        if value is not None:
            settings[setting] = not value if dest in NEGATED else value
    return settings


def read_settings(args: argparse.Namespace) -> tuple[Config, list[ConfigProblem]]:
    """The config file (--config, $GEARTERM_CONFIG or the user's) with the flags applied, and
    the file's problems; a flag the file could not hold either is a UsageError."""
    path = config_path(args.config)
    if args.config and not path.is_file():
        raise UsageError(f"no config file at {path}")
    config, problems = load_config(path)
    return apply_flags(config, **flag_settings(args, MODEL_FLAGS | REPLY_FLAGS)), problems
