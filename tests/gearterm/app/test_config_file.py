"""The config file: defaults for every key, problems reported with file and line, flags on top."""

from pathlib import Path

from gearterm.config import (
    BackendEntry,
    Config,
    GenerationConfig,
    UIConfig,
    apply_flags,
    config_path,
    data_dir,
    load_config,
)


def _load(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def test_an_absent_file_is_all_defaults(tmp_path):
    assert load_config(tmp_path / "nope.toml") == (Config(), [])


def test_a_full_file_is_read(tmp_path):
    config, problems = _load(
        tmp_path,
        """
model = "/models/llama"
backend = "ollama"
gear = "mid"
url = "http://box:11434"
[generation]
max_tokens = 64
temperature = 1      # an integer is fine for a float
[ui]
gear_tint = true
entropy_ceiling_bits = 12.5
[keymap]
cycle_gear = "f9,ctrl+g"
[backends.laptop]
backend = "openai"
model = "qwen"
url = "http://laptop:8080/v1"
""",
    )
    assert problems == []
    assert (config.model, config.backend, config.gear, config.url) == ("/models/llama", "ollama", "mid", "http://box:11434")
    assert config.generation == GenerationConfig(max_tokens=64, temperature=1.0)
    assert config.ui == UIConfig(gear_tint=True, entropy_ceiling_bits=12.5)
    assert config.keymap == {"cycle_gear": "f9,ctrl+g"}
    assert config.backends == (BackendEntry("laptop", "openai", "qwen", "http://laptop:8080/v1"),)


def test_a_syntax_error_names_the_line_and_falls_back_to_defaults(tmp_path):
    config, [problem] = _load(tmp_path, 'model = "x"\n[ui\ngear_tint = true\n')
    assert config == Config()
    assert problem.line == 2 and "TOML syntax error" in problem.message
    assert str(problem).startswith(f"{tmp_path / 'config.toml'}:2:")


def test_wrong_types_and_unknown_keys_are_reported_with_their_lines(tmp_path):
    config, problems = _load(
        tmp_path,
        """model = "kept"
colour = "blue"
[generation]
max_tokens = "many"
top_p = 1.5
[ui]
gear_tint = "yes"
[keymap]
no_such_key = "f12"
[backends.x]
model = "m"
""",
    )
    found = {(p.line, p.message.split(" ")[0]) for p in problems}
    assert found == {
        (2, "unknown"),  # colour
        (4, "generation.max_tokens"),
        (5, "generation.top_p"),
        (7, "ui.gear_tint"),
        (9, "unknown"),  # the keymap id
        (10, "backends.x"),  # no backend name
    }
    assert config.model == "kept" and config.generation == GenerationConfig() and config.ui.gear_tint is False
    assert config.keymap == {} and config.backends == ()
    assert all(str(p).startswith(f"{tmp_path / 'config.toml'}:") for p in problems)


def test_a_bad_gear_mode_is_reported(tmp_path):
    config, [problem] = _load(tmp_path, 'gear = "turbo"\n')
    assert config.gear == "auto" and problem.line == 1 and "auto, low, mid, high" in problem.message


def test_flags_override_the_file(tmp_path):
    config, _ = _load(tmp_path, 'model = "a"\nbackend = "ollama"\n')
    assert apply_flags(config, model="b", gear="high") == Config(model="b", backend="ollama", gear="high")
    assert apply_flags(config) == config


def test_environment_picks_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GEARTERM_CONFIG", str(tmp_path / "c.toml"))
    monkeypatch.setenv("GEARTERM_DATA_DIR", str(tmp_path / "d"))
    assert config_path() == tmp_path / "c.toml"
    assert config_path(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    assert data_dir() == tmp_path / "d"
    monkeypatch.delenv("GEARTERM_CONFIG")
    assert config_path().name == "config.toml" and "gearterm" in str(config_path())


def test_the_readmes_generation_and_ui_tables_are_the_defaults(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = next(b for b in readme.split("```toml\n")[1:] if b.startswith("[generation]")).split("```")[0]
    config, problems = _load(tmp_path, block)
    assert problems == []
    assert config.generation == GenerationConfig() and config.ui == UIConfig()
