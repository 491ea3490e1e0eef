"""`gearterm bench families` times the gear it names: random weights' near-uniform logits make
the anomaly guard pin every mode to the high gear, which the CPU rows refuse to time, and which
the families bench turns off."""

import pytest

from gearterm.backends.gearbox import PolicyConfig
from gearterm.backends.hf import HFBackend
from gearterm.bench.cpu import _gearterm_rate
from gearterm.bench.families import family_configs, save_random_model
from gearterm.models import POCKET_MODEL_DIR

SMALL = dict(vocab_size=8192, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)


@pytest.fixture(scope="module")
def random_llama(tmp_path_factory):
    name, config = next(iter(family_configs(SMALL)))
    path = tmp_path_factory.mktemp(name)
    save_random_model(config, path, POCKET_MODEL_DIR)
    return path


def test_a_forced_row_that_the_anomaly_guard_moved_to_high_is_refused(random_llama):
    backend = HFBackend(str(random_llama), device="cpu", dtype="float32", gate=False)
    backend.load()
    backend.eos_ids = set()
    with pytest.raises(RuntimeError, match="low mode ran other gears than low"):
        _gearterm_rate(backend, "low", 8)


def test_with_the_guard_off_the_low_row_runs_the_low_gear(random_llama):
    backend = HFBackend(str(random_llama), device="cpu", dtype="float32", gate=False,
                        policy=PolicyConfig(anomaly_fraction=2.0))
    backend.load()
    backend.eos_ids = set()
    assert _gearterm_rate(backend, "low", 8)[0] > 0
