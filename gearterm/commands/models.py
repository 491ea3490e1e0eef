"""`gearterm models`: the models gearterm can find here, as a table."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ollama-url", metavar="URL", help="where to ask Ollama (default: ollama_url from the config)")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $GEARTERM_CONFIG, else config.toml in the user config dir)"
    )


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def main(args: argparse.Namespace) -> int:
    from gearterm.config import config_path, load_config
    from gearterm.models import list_models

    url = args.ollama_url
    if url is None:
        config, problems = load_config(config_path(args.config))
        for problem in problems:
            print(f"gearterm: {problem}", file=sys.stderr)
        url = config.ollama_url
    entries = list_models(url)
    rows = [("NAME", "SOURCE", "SIZE", "WHERE")]
    rows += [(e.name, e.source, human_size(e.size_bytes), e.location) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    if not any(e.source == "ollama" for e in entries):
        print(f"(no Ollama models from {url})", file=sys.stderr)
    return 0
