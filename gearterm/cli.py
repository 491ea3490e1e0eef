"""The `gearterm` command line: the app by default, plus run, models and bench subcommands.

Each subcommand lives in its own module with `add_arguments(parser)` and `main(args) -> int`;
those modules import heavy libraries (torch, textual) inside main(), so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gearterm import quiet_exit
from gearterm.backends.base import BackendError, BackendFault
from gearterm.errors import UsageError, one_line

COMMANDS = {
    "run": ("gearterm.commands.run", "generate one reply headless and print it"),
    "models": ("gearterm.commands.models", "list the models gearterm can find"),
}
BENCHES = {
    "quality": ("gearterm.bench.quality", "perplexity and agreement of each gear mode on real text"),
    "ui": ("gearterm.bench.ui", "key-press latency of the app under a 500 tokens/s stream"),
    "gate": ("gearterm.bench.gate", "activation entropy gate: speed, agreement, quality cost"),
    "kernels": ("gearterm.bench.kernels", "low/mid gear GEMV and GEMM against cuBLAS"),
    "decode": ("gearterm.bench.decode", "tokens/s, shift latency and J/token per gear mode"),
    "cpu": ("gearterm.bench.cpu", "CPU decode tokens/s per gear mode beside transformers and llama.cpp"),
    "families": ("gearterm.bench.families", "CPU tokens/s in the high and low gear for a random model of each supported family"),
    "turns": ("gearterm.bench.turns", "time to first token per turn, KV cache reused across turns or not"),
    "lossless": ("gearterm.bench.lossless", "lossless mode on real text: acceptance, tokens per verify pass, tok/s beside forced high"),
}
APP = "gearterm.commands.app"


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        return None


def _add(sub, name: str, module_name: str, help_text: str) -> None:
    module = _module(module_name)
    if module is None:
        return
    parser = sub.add_parser(name, help=help_text, description=help_text)
    module.add_arguments(parser)
    parser.set_defaults(handler=module.main)


class Parser(argparse.ArgumentParser):
    """argparse's own errors as one line too, not the usage block and a second line."""

    def error(self, message: str):
        raise UsageError(f"{message} ({self.prog} --help lists the options)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gearterm",
        description="Chat with a local LLM while watching it shift gears (4, 8 or 16-bit weights per token).",
    )
    app = _module(APP)
    if app is not None:
        app.add_arguments(parser)
        parser.set_defaults(handler=app.main)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        _add(sub, name, module_name, help_text)
    bench = sub.add_parser("bench", help="benchmarks that print a table with their baseline")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="BENCH", required=True)
    for name, (module_name, help_text) in BENCHES.items():
        _add(bench_sub, name, module_name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_exit.install()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 2
        return handler(args) or 0
    except BackendFault as e:
        print(f"gearterm: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except (UsageError, BackendError) as e:
        print(f"gearterm: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gearterm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
