"""The app takes every flag the README documents for it, and they reach the backend it opens
(issue 18, fix 12: `gearterm` once refused --no-compile, --allow-pickle, --trust-remote-code,
--device and --dtype)."""

import re
from pathlib import Path

from gearterm.app.backend_choices import create_from_entry, startup_entry
from gearterm.cli import build_parser
from gearterm.commands import app as app_command
from gearterm.commands import settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_flag_the_readme_lists_for_the_app_is_taken():
    paragraph = next(p for p in README.read_text().split("\n\n") if p.startswith("The app and `gearterm run` read the same"))
    documented = set(re.findall(r"`(--[a-z-]+)`", paragraph))
    assert {"--no-compile", "--allow-pickle", "--trust-remote-code", "--device", "--dtype", "--context"} <= documented
    parser = build_parser()
    known = {option for action in parser._actions for option in action.option_strings}
    assert documented <= known


def test_the_model_flags_reach_the_backend_the_app_opens():
    args = build_parser().parse_args(
        ["--no-compile", "--allow-pickle", "--trust-remote-code", "--device", "cpu", "--dtype", "float32", "--context", "1024"]
    )
    assert args.handler is app_command.main  # the app, not a subcommand
    config, problems = settings.read_settings(args)
    assert problems == []
    backend = create_from_entry(startup_entry(config), config)
    assert backend.compile is False and backend.allow_pickle and backend.trust_remote_code
    assert (backend.requested_device, backend.requested_dtype, backend.context) == ("cpu", "float32", 1024)
