"""Fuzzing what a user types: the command line (the app's and `gearterm run`'s flags) and the
config file (every key, every TOML type). The outcome is always a run or one clean line, never
a traceback; a config file never stops anything, and what it leaves is a config that works.

Loading a model for each of hundreds of examples cannot run in time: `run` gets the scripted
stand-in backend in place of the model its flags name (loading faults have their own tests in
test_cli_bad_input.py), and the app's `run()` returns at once. Everything before, the parser,
the config file and the checks of every value, is the real code."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gearterm.app.backend_choices import create_from_entry, startup_entry
from gearterm.backends.base import BackendError, GenerationParams
from gearterm.backends.gearbox import GearMode
from gearterm.bench.scripted_backend import ScriptedBackend
from gearterm.cli import main
from gearterm.config import BackendEntry, Config, GenerationConfig, ServerOptions, UIConfig, load_config, setting_problem

CLI_EXAMPLES, CONFIG_EXAMPLES = 1000, 500

# ---- the command line ---------------------------------------------------------------------

NASTY = ["nan", "inf", "-inf", "1e999", "-0", "0x10", "", " ", "-", "1_000", "4294967296", "99999999999999999999999",
         "0.001", "auto", "cuda:7", "float16", "hf", "ollama", "low", "\udcff", "a\x00b"]
nasty = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=20),
    st.binary(max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")),  # argv bytes that are not UTF-8
)
numbers = st.one_of(st.integers().map(str), st.floats().map(repr))
# Each flag with values near what it takes, and anything at all.
VALUED = {
    "--config": nasty,
    "--model": st.text(max_size=20),
    "--backend": st.sampled_from(["hf", "mlx", "ollama", "openai"]),
    "--url": st.text(max_size=20),
    "--device": st.sampled_from(["auto", "cpu", "cuda", "cuda:1", "mps", "tpu"]),
    "--dtype": st.sampled_from(["auto", "float32", "float16", "bfloat16", "int8"]),
    "--gear": st.sampled_from(["auto", "low", "mid", "high", "turbo"]),
    "--max-tokens": st.one_of(st.integers(-3, 5000).map(str), numbers),
    "--context": st.one_of(st.integers(-3, 5000).map(str), numbers),
    "--temperature": st.one_of(st.floats(-1, 200).map(repr), numbers),
    "--top-p": st.one_of(st.floats(-0.5, 1.5).map(repr), numbers),
    "--seed": st.one_of(st.integers(-10, 2**33).map(str), numbers),
    "--timeout": st.one_of(st.floats(-1, 1e7).map(repr), numbers),
    "--prompt": st.one_of(st.text(max_size=30), nasty),
    "--prompt-file": nasty,
}
SWITCHES = ["--no-compile", "--trust-remote-code", "--allow-pickle", "--no-gate", "--json"]
flag = st.one_of(
    *(st.tuples(st.just(name), st.one_of(near, near, near, nasty)) for name, near in VALUED.items()),
    st.sampled_from(SWITCHES).map(lambda s: (s,)),
    st.one_of(nasty, st.sampled_from(["--help-me", "-x", "--prompt"])).map(lambda s: (s,)),  # a stray word
).map(lambda f: [f"{f[0]}={f[1]}"] if len(f) == 2 and f[1].startswith("-") else list(f))
# `run` with a prompt first, so that the flags after it decide whether it runs.
argvs = st.tuples(st.sampled_from([["run", "--prompt", "hi"], []]), st.lists(flag, max_size=5)).map(
    lambda t: t[0] + [a for f in t[1] for a in f]
)


class ShortReplies(ScriptedBackend):
    """Three tokens at most, whatever --max-tokens says: a fuzzed 2**31 - 1 must not take hours."""

    def generate(self, messages, params):
        return super().generate(messages, dataclasses.replace(params, max_tokens=min(params.max_tokens, 3)))


def _stand_ins(monkeypatch, tmp_path):
    from gearterm.app.app import GeartermApp
    from gearterm.commands import run

    monkeypatch.setattr(run, "load_backend", lambda config, progress=None: ShortReplies(1e6))
    monkeypatch.setattr(GeartermApp, "run", lambda self, *args, **kwargs: None)
    monkeypatch.setenv("GEARTERM_DATA_DIR", str(tmp_path / "data"))


@settings(max_examples=CLI_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs)
def test_any_command_line_is_a_run_or_one_clean_line(argv, monkeypatch, tmp_path, capsys):
    _stand_ins(monkeypatch, tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a prompt from stdin")))
    code = main(argv)
    out, err = capsys.readouterr()
    event(f"{argv[0] if argv[:1] == ['run'] else 'app'}: exit {code}")
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("gearterm: error:")]
    if code == 0:
        assert errors == []
    else:
        assert code == 2 and len(errors) == 1 and err.endswith(errors[0] + "\n"), (argv, err)


# ---- the config file ----------------------------------------------------------------------

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's (the text has no lone surrogates)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    text,
    st.sampled_from(["auto", "hf", "ollama", "openai", "mlx", "low", "lower", "upper", "cuda:0", "f9", "float16"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["low", "mid", "high", "x"]), inner, max_size=3)),
    max_leaves=6,
)


def keys_of(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


TOP = [k for k in keys_of(Config) if k not in ("server", "generation", "ui", "keymap", "backends")] + keys_of(ServerOptions)
ENTRY = [k for k in keys_of(BackendEntry) if k != "server"] + keys_of(ServerOptions)
KEYMAP = ["help", "cycle_gear", "quit", "no_such_binding"]


def table(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys + ["unknown_key"]), toml_values, max_size=len(keys))


@st.composite
def config_files(draw) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in draw(table(TOP)).items()]
    for name, keys in (("generation", keys_of(GenerationConfig)), ("ui", keys_of(UIConfig)), ("keymap", KEYMAP)):
        if draw(st.booleans()):
            lines += [f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in draw(table(keys)).items()]
    for label in draw(st.lists(st.sampled_from(["box", "laptop", "gpu"]), unique=True, max_size=2)):
        entry = draw(table(ENTRY))
        if draw(st.booleans()):
            entry["backend"] = draw(st.sampled_from(["hf", "ollama", "openai"]))
        lines += [f"[backends.{label}]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def _check_loaded(config: Config, problems) -> None:
    """What a config file leaves is a config that works: every value in range, a reply's
    parameters build, and each backend it names is created or refused with a message."""
    assert all(str(p) for p in problems)
    g = config.generation
    for key, value in [*dataclasses.asdict(g).items(), *dataclasses.asdict(config.server).items(),
                       ("entropy_ceiling_bits", config.ui.entropy_ceiling_bits), ("gear", config.gear),
                       ("backend", config.backend), ("device", config.device), ("dtype", config.dtype)]:
        assert value is None or key == "gear_models" or setting_problem(key, value) is None, (key, value)
    GenerationParams(g.max_tokens, g.temperature, g.top_p, g.seed, GearMode(config.gear))
    for entry in (startup_entry(config), *config.backends):
        try:
            create_from_entry(entry, config)
        except BackendError as e:
            assert str(e)


@settings(max_examples=CONFIG_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=config_files())
def test_any_config_file_is_read_into_a_config_that_works(document, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(document, encoding="utf-8")
    _check_loaded(*load_config(path))


@settings(max_examples=CONFIG_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_config_file_are_read_or_reported(data, tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    _check_loaded(*load_config(path))
