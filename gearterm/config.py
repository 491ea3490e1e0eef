"""The user's settings: a TOML file in the user config dir, every key with a default.

A wrong file never stops the app: each unknown key, wrong type or bad value is reported
with its file and line and the default is used instead. Command-line flags override the file
and are checked the same way (setting_problem), numbers against backends/limits.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gearterm.app.keys import KEY_IDS
from gearterm.backends.gearbox import GearMode
from gearterm.backends.limits import LIMITS, out_of_range
from gearterm.backends.registry import BACKENDS
from gearterm.errors import UsageError

CONFIG_ENV = "GEARTERM_CONFIG"
DATA_ENV = "GEARTERM_DATA_DIR"


@dataclass(frozen=True)
class GenerationConfig:
    """How replies are made: [generation] in config.toml, and each conversation's own copy,
    changed in the settings screen and kept with the conversation."""

    system_prompt: str = ""  # sent before the chat as a system message; "" = none
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None  # None = a new random seed each reply
    # Positions of context (prompt + reply): what a local model's KV cache holds, set at load (0 =
    # the model's own, or what fits in free memory); a chat's own value leaves older turns out to fit
    context: int = 0
    # The gear policy's thresholds at a 32k vocabulary (scaled by log2(V) / 15 for the model's);
    # local backends only: a server backend routes whole turns with its own.
    low_below_bits: float = 1.8
    high_above_bits: float = 3.5
    # Lossless mode: the gear that drafts (low, mid, or auto: whichever costs less time per kept
    # token, measured), and the longest draft one verify pass checks
    lossless_draft: str = "low"
    lossless_max_draft: int = 8

    def problem(self) -> str | None:
        """What is wrong with the settings taken together (each one alone is checked by setting_problem)."""
        if self.low_below_bits >= self.high_above_bits:
            return f"low_below_bits ({self.low_below_bits:g}) must be below high_above_bits ({self.high_above_bits:g})"
        return None


@dataclass(frozen=True)
class UIConfig:
    theme: str = "textual-dark"
    gear_tint: bool = False  # start with reply tokens tinted by gear
    entropy_ceiling_bits: float = 0.0  # top of the entropy sparkline; 0 = log2 of the vocabulary
    export_dir: str = ""  # where the export key writes its Markdown and JSONL files; "" = exports/ in the data dir


SERVER_BACKENDS = ("ollama", "openai")  # the backends ServerOptions apply to


@dataclass(frozen=True)
class ServerOptions:
    """How an Ollama or OpenAI-compatible server is asked: keys of the top level (the startup
    backend) or of a [backends.LABEL] table. The defaults are the HTTP backends' own."""

    entropy_source: str = "lower"  # the top-k entropy bound the gear policy runs on: lower, or upper (needs V)
    top_logprobs: int = 20  # alternatives asked per token; Ollama allows at most 20
    timeout_s: float = 300.0  # seconds the server may stay silent (connecting has its own 5 s)
    vocab_size: int = 0  # for the upper bound where the server does not report V; 0 = the server's figure
    gear_models: dict[str, str] = field(default_factory=dict)  # gear -> model name; empty = proposed from the server's list


@dataclass(frozen=True)
class BackendEntry:
    """One line of the backend picker, from a [backends.LABEL] table."""

    label: str
    backend: str
    model: str = ""  # "" = the backend's default model
    url: str = ""  # "" = the backend's default server
    server: ServerOptions = ServerOptions()


@dataclass(frozen=True)
class Config:
    model: str = ""  # path, Hugging Face id or server model name; "" = the packaged default model
    backend: str = "hf"
    gear: str = "auto"  # auto, low, mid, high or lossless
    url: str = ""  # server of an HTTP backend; "" = its default
    device: str = "auto"  # for local backends: auto, cpu, cuda, cuda:1 ...
    dtype: str = "auto"  # hf: auto (float32 on CPU, the checkpoint's 16-bit type on a GPU), float32, float16, bfloat16
    compile: bool = True  # hf on a GPU: torch.compile each decoder layer (1.2-1.4x tok/s; ~2 min more to load an 8B model)
    gate: bool = True  # local backends: run the activation entropy gate on every layer each token
    trust_remote_code: bool = False  # local backends: run Python code shipped with a model
    allow_pickle: bool = False  # hf: load pickle .bin weights (they can run code)
    ollama_url: str = "http://127.0.0.1:11434"  # where the backend picker looks for Ollama models
    server: ServerOptions = ServerOptions()  # the startup backend's, when it is ollama or openai
    generation: GenerationConfig = GenerationConfig()
    ui: UIConfig = UIConfig()
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys, e.g. cycle_gear = "f9"
    backends: tuple[BackendEntry, ...] = ()


@dataclass(frozen=True)
class ConfigProblem:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """--config, else $GEARTERM_CONFIG, else config.toml in the XDG config dir."""
    for given, name in ((explicit, "--config"), (os.environ.get(CONFIG_ENV), f"${CONFIG_ENV}")):
        if not given:
            continue
        try:
            return Path(given).expanduser()
        except (ValueError, RuntimeError) as e:  # a NUL byte; "~name" of no such user
            raise UsageError(f"{name} {str(given)!r} is not a usable path: {e}") from None
    from platformdirs import user_config_dir

    return Path(user_config_dir("gearterm")) / "config.toml"


def export_dir(ui: UIConfig) -> Path:
    """Where exports go: [ui] export_dir, else an exports folder beside the history (never the
    current directory, which under `make run` is the git checkout)."""
    return Path(ui.export_dir).expanduser() if ui.export_dir else data_dir() / "exports"


def data_dir() -> Path:
    """$GEARTERM_DATA_DIR, else the XDG data dir: where the history database lives."""
    if env := os.environ.get(DATA_ENV):
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("gearterm"))


def load_config(path: Path) -> tuple[Config, list[ConfigProblem]]:
    """Read `path` (absent = all defaults). Never raises for bad content: problems come back listed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(), []
    except (OSError, UnicodeDecodeError) as e:
        return Config(), [ConfigProblem(path, None, f"cannot read the config file ({e}); using defaults")]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = re.search(r"at line (\d+)", str(e))
        return Config(), [
            ConfigProblem(path, int(line.group(1)) if line else None, f"TOML syntax error: {e}; using defaults")
        ]
    return _Reader(path, text).config(data)


CHOICES = {
    "gear": tuple(m.value for m in GearMode),
    "backend": tuple(BACKENDS),
    "dtype": ("auto", "float32", "float16", "bfloat16"),
    "entropy_source": ("lower", "upper"),
    "lossless_draft": ("low", "mid", "auto"),
}
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def setting_problem(key: str, value) -> str | None:
    """What is wrong with `value` for setting `key` ("must be ..., not ..."), or None: the one
    check behind both the config file and the command-line flags."""
    if key in LIMITS:
        return out_of_range(key, value)
    if key in CHOICES and value not in CHOICES[key]:
        return f"must be one of {', '.join(CHOICES[key])}, not {value!r}"
    if key == "device" and not DEVICE.fullmatch(value):
        return f"must be auto, cpu, mps, cuda or cuda:N, not {value!r}"
    return None


_GENERATION_KEYS = frozenset(f.name for f in dataclasses.fields(GenerationConfig))
FLAG_NAMES = {"timeout_s": "--timeout", "compile": "--no-compile", "gate": "--no-gate"}  # where not --key-with-dashes


def apply_flags(config: Config, **flags) -> Config:
    """Command-line flags, by setting name, win over the file; None leaves a setting as it is.
    A value the file could not hold either is a UsageError naming the flag. timeout_s sets
    the startup backend's server option."""
    given = {key: value for key, value in flags.items() if value is not None}
    for key, value in given.items():
        if problem := setting_problem(key, value):
            raise UsageError(f"{FLAG_NAMES.get(key, '--' + key.replace('_', '-'))} {problem}")
    generation = {key: given.pop(key) for key in _GENERATION_KEYS & given.keys()}
    server = {key: given.pop(key) for key in _SERVER_KEYS & given.keys()}
    return dataclasses.replace(
        config,
        **given,
        generation=dataclasses.replace(config.generation, **generation),
        server=dataclasses.replace(config.server, **server),
    )


class _Reader:
    """Turns parsed TOML into a Config, collecting a problem for every key it cannot use."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()
        self.problems: list[ConfigProblem] = []

    def config(self, data: dict) -> tuple[Config, list[ConfigProblem]]:
        values = self._section(Config, data, (), skip={"generation", "ui", "keymap", "backends", *_SERVER_KEYS})
        values["server"] = self._server(data, (), values.get("backend", Config.backend))
        generation = self._table(data, "generation", GenerationConfig)
        if problem := generation.problem():
            self._problem(("generation",), "high_above_bits", f"generation: {problem}; using the default thresholds")
            generation = dataclasses.replace(
                generation, low_below_bits=GenerationConfig.low_below_bits, high_above_bits=GenerationConfig.high_above_bits
            )
        ui = self._table(data, "ui", UIConfig)
        config = Config(
            **values,
            generation=generation,
            ui=ui,
            keymap=self._keymap(data.get("keymap", {})),
            backends=self._backends(data.get("backends", {})),
        )
        return config, self.problems

    def _table(self, data: dict, name: str, cls):
        table = data.get(name, {})
        if not isinstance(table, dict):
            self._problem((), name, f"{name} must be a table ([{name}]), not {_type_name(table)}")
            return cls()
        return cls(**self._section(cls, table, (name,)))

    def _section(self, cls, table: dict, where: tuple[str, ...], skip=frozenset()) -> dict:
        """The keys of `table` that are fields of `cls` with the right type."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in table.items():
            if key in skip:
                continue
            if key not in fields or fields[key].type not in _SCALARS:
                settable = {name for name, f in fields.items() if f.type in _SCALARS}
                known = ", ".join(sorted((settable | set(skip)) - {"label"}))
                self._problem(where, key, f"unknown key {_dotted(where, key)!r} (known here: {known})")
                continue
            expected = _SCALARS[fields[key].type]
            if (ok := _coerce(value, expected)) is None:
                self._problem(
                    where,
                    key,
                    f"{_dotted(where, key)} must be {_type_name(expected())}, not {_type_name(value)} "
                    f"({value!r}); using the default",
                )
                continue
            if problem := setting_problem(key, ok):
                self._problem(where, key, f"{_dotted(where, key)} {problem}; using the default")
                continue
            values[key] = ok
        return values

    def _keymap(self, table) -> dict[str, str]:
        if not isinstance(table, dict):
            self._problem((), "keymap", f"keymap must be a table ([keymap]), not {_type_name(table)}")
            return {}
        keymap = {}
        for binding_id, keys in table.items():
            if binding_id not in KEY_IDS:
                self._problem(
                    ("keymap",),
                    binding_id,
                    f"unknown binding id {binding_id!r} in [keymap] (known: {', '.join(sorted(KEY_IDS))})",
                )
            elif not isinstance(keys, str) or not keys.strip():
                self._problem(
                    ("keymap",), binding_id, f'keymap.{binding_id} must be keys as a string, e.g. "f9" or "f9,ctrl+g"'
                )
            else:
                keymap[binding_id] = keys
        return keymap

    def _backends(self, table) -> tuple[BackendEntry, ...]:
        if not isinstance(table, dict):
            self._problem((), "backends", "backends must be tables: [backends.LABEL] with backend, model, url")
            return ()
        entries = []
        for label, entry in table.items():
            if not isinstance(entry, dict):
                self._problem(("backends",), label, f"backends.{label} must be a table with backend, model, url")
                continue
            where = ("backends", label)
            values = self._section(BackendEntry, {k: v for k, v in entry.items() if k != "label"}, where, _SERVER_KEYS)
            if "backend" not in values:
                self._problem(("backends",), label, f'backends.{label} needs a backend name, e.g. backend = "ollama"')
                continue
            entries.append(BackendEntry(label=label, **values, server=self._server(entry, where, values["backend"])))
        return tuple(entries)

    def _server(self, table: dict, where: tuple[str, ...], backend: str) -> ServerOptions:
        """The ServerOptions keys of `table` (the top level or one [backends.LABEL]), checked."""
        given = {k: v for k, v in table.items() if k in _SERVER_KEYS}
        if given and backend not in SERVER_BACKENDS:
            for key in given:
                self._problem(
                    where,
                    key,
                    f"{_dotted(where, key)} is for the {' and '.join(SERVER_BACKENDS)} backends, "
                    f"not {backend!r}; ignored",
                )
            return ServerOptions()
        values = self._section(ServerOptions, given, where, skip={"gear_models"})
        default = ServerOptions()

        def reject(key: str, message: str) -> None:
            self._problem(where, key, f"{_dotted(where, key)} {message}, not {values.pop(key)!r}; using the default")

        if backend == "ollama":
            from gearterm.backends.ollama import MAX_TOP_LOGPROBS

            if values.get("top_logprobs", default.top_logprobs) > MAX_TOP_LOGPROBS:
                reject("top_logprobs", f"must be at most {MAX_TOP_LOGPROBS} for Ollama")
        vocab_size = values.get("vocab_size", default.vocab_size)
        if vocab_size != 0 and vocab_size <= values.get("top_logprobs", default.top_logprobs):
            reject("vocab_size", "must be 0 (the server's figure) or more than top_logprobs")
        if "gear_models" in given:
            values["gear_models"] = self._gear_models(given["gear_models"], where)
        return ServerOptions(**values)

    def _gear_models(self, table, where: tuple[str, ...]) -> dict[str, str]:
        name = _dotted(where, "gear_models")
        if not isinstance(table, dict):
            self._problem(where, "gear_models", f'{name} must be a table, e.g. {{ low = "m:q4_K_M", high = "m:fp16" }}')
            return {}
        gear_models = {}
        for gear, model in table.items():
            if gear not in ("low", "mid", "high"):
                message = f"unknown gear {gear!r} in {name} (use low, mid, high)"
            elif not isinstance(model, str) or not model.strip():
                message = f"{name}.{gear} must be a model name the server lists, not {model!r}"
            else:
                gear_models[gear] = model
                continue
            # A [..gear_models] table has the gear on its own line; an inline table is one line.
            line = self._line_of((*where, "gear_models"), gear) or self._line_of(where, "gear_models")
            self.problems.append(ConfigProblem(self.path, line, message))
        return gear_models

    def _problem(self, where: tuple[str, ...], key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.path, self._line_of(where, key), message))

    def _line_of(self, where: tuple[str, ...], key: str) -> int | None:
        """The line that sets `key` in table `where` (tomllib keeps no positions, so look)."""
        table: tuple[str, ...] = ()
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        assignment = re.compile(r'^\s*("?)' + re.escape(key) + r'\1\s*=')
        for number, line in enumerate(self.lines, start=1):
            if m := header.match(line):
                table = tuple(part.strip().strip('"') for part in m.group(1).split("."))
                if table == (*where, key):
                    return number
            elif table == where and assignment.match(line):
                return number
        return None


# Field annotations are strings here; TOML has no null, so an optional setting is set or left out.
_SCALARS = {"str": str, "int": int, "float": float, "bool": bool, "int | None": int}
_SERVER_KEYS = frozenset(f.name for f in dataclasses.fields(ServerOptions))


def _coerce(value, expected: type):
    """`value` as `expected`, or None when TOML gave another type (ints pass as floats)."""
    if expected is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if expected is float and isinstance(value, int):
        return float(value)
    return value if isinstance(value, expected) else None


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table", list: "an array"}.get(
        type(value), type(value).__name__
    )


def _dotted(where: tuple[str, ...], key: str) -> str:
    return ".".join((*where, key))
