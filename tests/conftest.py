"""Shared test setup: CPU only, network blocked, a private VARBENCH_HOME per session."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _offline_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("varbench_home")
    old = {k: os.environ.get(k) for k in ("VARBENCH_HOME", "VARBENCH_OFFLINE", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")}
    os.environ.update(VARBENCH_HOME=str(home), VARBENCH_OFFLINE="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class BlockedNetwork(ConnectionRefusedError):
    """What a test sees when code reaches beyond loopback (an OSError, like a real unreachable network)."""


class _NoNetwork(socket.socket):
    def connect(self, address):  # noqa: D401
        if isinstance(address, tuple) and address and str(address[0]).startswith(("127.", "localhost", "::1")):
            return super().connect(address)
        raise BlockedNetwork(f"network access attempted in a test: {address!r}")


@pytest.fixture(autouse=True, scope="session")
def _block_network():
    orig = socket.socket
    socket.socket = _NoNetwork  # type: ignore[misc]
    yield
    socket.socket = orig  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _threads():
    import torch

    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_thread(_threads):
    """One intra-op thread, for tiny step-by-step models: on a shared 2-core machine two OpenMP threads wait for each
    other at every op (measured 6-10x slower under load); restored afterwards by ``_threads``."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory, _offline_env):
    """Real outputs of generate -> ref -> fid -> speed on the tiny models (tests/pipeline.py), made once."""
    import pipeline

    return pipeline.make(tmp_path_factory.mktemp("pipeline"))
