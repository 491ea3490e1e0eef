"""`gearterm` with no subcommand: open the chat app (Textual is imported only in main())."""

from __future__ import annotations

import argparse
import sys

from gearterm.commands import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from gearterm.app.backend_choices import startup_entry
    from gearterm.config import data_dir
    from gearterm.history import open_history

    config, problems = settings.read_settings(args)
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
    if app.history_writer.waiting:
        print(
            f"gearterm: error: history was still paused at exit ({app.history_writer.paused}): "
            "the latest messages were not saved; free space or end what locks it before the next session",
            file=sys.stderr,
        )
        return 1
    return app.return_code or 0
