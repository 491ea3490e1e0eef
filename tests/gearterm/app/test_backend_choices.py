"""Creating a backend from a picker entry passes each backend only the options it takes."""

import pytest

from gearterm.app.backend_choices import create_from_entry
from gearterm.config import BackendEntry, Config


def test_hf_entry_gets_device_and_compile_from_the_config():
    backend = create_from_entry(BackendEntry("hf", "hf"), Config(device="cpu", compile=False))
    assert backend.name == "hf" and backend.requested_device == "cpu" and backend.compile is False


def test_mlx_entry_is_created_without_torch_only_options():
    pytest.importorskip("mlx_lm")
    backend = create_from_entry(BackendEntry("mlx", "mlx"), Config(device="cpu"))
    assert backend.name == "mlx" and backend.model_name.endswith("pocket")
