"""Where the GPU path's torch.compile keeps its work: under the user's cache dir, unless the user
chose a place (the compiling itself needs a GPU; the choice of place does not)."""

import os

import pytest

from gearterm.backends.compile_cache import CACHES, use_compile_cache


@pytest.fixture
def unset(monkeypatch):
    for variable in CACHES:
        monkeypatch.delenv(variable, raising=False)


def test_both_caches_go_under_the_xdg_cache_home(unset, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shown = use_compile_cache()
    assert shown == os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "gearterm" / "compile" / "inductor")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "gearterm" / "compile" / "triton")


def test_without_xdg_the_caches_go_under_dot_cache_in_home(unset, monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert use_compile_cache() == str(tmp_path / ".cache" / "gearterm" / "compile" / "inductor")


def test_a_cache_the_user_set_is_kept_and_shown(unset, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache() == str(tmp_path / "mine")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "xdg" / "gearterm" / "compile" / "triton")
