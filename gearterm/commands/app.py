"""`gearterm` with no subcommand: open the chat app (Textual is imported only in main())."""

from __future__ import annotations

import argparse
import sys

from gearterm.backends.gearbox import GearMode
from gearterm.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH_OR_ID", help="model directory, Hugging Face id or server model name")
    parser.add_argument("--backend", metavar="NAME", help="hf, mlx, ollama or openai (default: from the config, else hf)")
    parser.add_argument(
        "--gear", metavar="MODE", choices=[m.value for m in GearMode], help="gear mode: auto, low, mid or high"
    )
    parser.add_argument("--url", metavar="URL", help="server URL for the ollama and openai backends")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $GEARTERM_CONFIG, else config.toml in the user config dir)"
    )


def main(args: argparse.Namespace) -> int:
    from gearterm.backends.registry import BACKENDS
    from gearterm.app.backend_choices import startup_entry
    from gearterm.config import apply_flags, config_path, data_dir, load_config
    from gearterm.history import open_history

    if args.backend is not None and args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r}: choose one of {', '.join(BACKENDS)}")
    path = config_path(args.config)
    if args.config and not path.is_file():
        raise UsageError(f"no config file at {path}")
    config, problems = load_config(path)
    config = apply_flags(config, model=args.model, backend=args.backend, gear=args.gear, url=args.url)
    history, history_problem = open_history(data_dir())
    notes = [("error", str(p)) for p in problems]
    if history_problem:
        notes.append(("warning", history_problem))
    for _, text in notes:  # also on stderr, where they stay readable after the app exits
        print(f"gearterm: {text}", file=sys.stderr)

    from gearterm.app.app import GeartermApp
    from gearterm.telemetry.power import PowerMeter

    with PowerMeter() as meter:
        app = GeartermApp(config, startup_entry(config), history, notes=notes, power=meter)
        app.run()
    return app.return_code or 0
