"""gearterm as a user installs it: one import namespace beside Hugging Face's own `kernels`.

transformers imports a distribution whose import name is `kernels`; gearterm's folders
backends/ and kernels/ install as gearterm.backends and gearterm.kernels, and with the
checkout on sys.path (python -m from its root, pytest) they must not hide the real one.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools leaves build/ in the tree it builds, and reuses it next time.
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("gearterm", "backends", "kernels"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True, cwd=out,
    )
    [built] = out.glob("gearterm-*.whl")
    return built


def test_the_wheel_installs_one_top_level_import_name(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top_level = z.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"gearterm"}
    assert top_level == ["gearterm"]
    assert "gearterm/backends/hf.py" in names and "gearterm/kernels/nested.py" in names
    assert "gearterm/models/pocket/model.safetensors" in names


INSTALLED_CHECK = """
import importlib
import sys
from pathlib import Path

import gearterm.backends.hf, gearterm.kernels.nested
from gearterm.backends.base import GenerationParams, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.models import POCKET_MODEL_DIR, default_model

# Hugging Face's distribution, whose import name is `kernels`: never gearterm's folder.
hf_kernels = importlib.import_module("kernels")
site = Path(sys.argv[1]).resolve()
for module in (gearterm.backends.hf, gearterm.kernels.nested):
    assert Path(module.__file__).resolve().is_relative_to(site), module.__file__
assert not Path(hf_kernels.__file__).resolve().is_relative_to(site), hf_kernels.__file__
assert default_model(None) == str(POCKET_MODEL_DIR) and POCKET_MODEL_DIR.is_relative_to(site)
backend = gearterm.backends.hf.HFBackend(default_model(None), device="cpu")
backend.load()
params = GenerationParams(max_tokens=8, gear_mode=GearMode.HIGH)
events = backend.generate([{"role": "user", "content": "And the king said"}], params)
print("".join(e.text for e in events if isinstance(e, TokenEvent)))
"""


@pytest.mark.slow
def test_a_wheel_install_loads_the_pocket_model_beside_hugging_faces_kernels(wheel, tmp_path):
    """Install the wheel into an empty folder, then chat with the default model in an
    interpreter that sees that folder and the venv's libraries but not the source tree."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
    )
    # -S: no site-packages processing, so the editable install's finder cannot point back here.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    result = subprocess.run(
        [sys.executable, "-S", "-c", INSTALLED_CHECK, str(site)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert any(c.isalpha() for c in result.stdout), result.stdout


TWO_KERNELS = """
import importlib
from pathlib import Path

import gearterm.kernels.nested
from transformers import AutoModelForCausalLM, AutoTokenizer
from gearterm.models import POCKET_MODEL_DIR

# Hugging Face's distribution, whose import name is `kernels`: never gearterm's folder.
hf_kernels = importlib.import_module("kernels")
repo = Path.cwd().resolve()
assert not Path(hf_kernels.__file__).resolve().is_relative_to(repo / "kernels"), hf_kernels.__file__
assert Path(gearterm.kernels.nested.__file__).resolve() == repo / "kernels" / "nested.py"
assert hasattr(hf_kernels, "get_kernel"), dir(hf_kernels)
model = AutoModelForCausalLM.from_pretrained(POCKET_MODEL_DIR, local_files_only=True)
ids = AutoTokenizer.from_pretrained(POCKET_MODEL_DIR)("Thou art", return_tensors="pt").input_ids
print(model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] - ids.shape[1])
"""


def test_hugging_faces_kernels_and_gearterms_load_in_one_process_from_the_checkout():
    """Run from the repository root, where a folder named kernels/ is first on sys.path."""
    result = subprocess.run(
        [sys.executable, "-c", TWO_KERNELS], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "4"


def test_python_dash_m_runs_from_the_repository_root():
    result = subprocess.run(
        [sys.executable, "-m", "gearterm.cli", "run", "--prompt", "Tell me of the sea.", "--max-tokens", "6",
         "--gear", "low", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"summary"' in result.stdout.splitlines()[-1]
    assert result.stderr == ""
