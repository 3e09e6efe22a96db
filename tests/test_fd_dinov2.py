"""FD_DINOv2 and DINOv2 density/coverage through `varbench ref build --extractor dinov2` and `varbench fid`, on tiny
random DINOv2 weights: its own reference and feature cache, never mixed with Inception statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline import cli
from varbench.cli.app import app
from varbench.evaluate import reference as references
from varbench.features.dinov2 import DINOv2Extractor, random_state_dict
from varbench.metrics import density_coverage, fid as fid_metric


@pytest.fixture(scope="module")
def dino(real_runs, tmp_path_factory):
    d = tmp_path_factory.mktemp("dino")
    weights = d / "dinov2_tiny.pth"
    torch.save(random_state_dict(1), weights)  # width 64, 2 heads: needs --dinov2-heads 2
    cli("ref", "build", "noise_dino", "--from", real_runs.root / "noise" / "samples.npz", "--extractor", "dinov2",
        "--dinov2-weights", weights, "--dinov2-heads", 2, "--device", "cpu", "--force")
    return weights


def _fail(*args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    return res.output


def test_fd_dinov2_next_to_the_adm_suite(real_runs, dino, tmp_path):
    out = tmp_path / "fid.json"
    samples = real_runs.generate[1.5]
    cli("fid", samples, "--ref", "ci_noise16", "--inception-weights", real_runs.weights, "--metrics",
        "fid,fd_dinov2,dc_dinov2", "--dinov2-ref", "noise_dino", "--dinov2-weights", dino, "--dinov2-heads", 2,
        "--device", "cpu", "--json", out)
    result = json.loads(out.read_text())
    m, res = result["results"]["metrics"], result["results"]
    ref = references.resolve("noise_dino")[0]
    assert ref.feature == "dinov2" and ref.mu.shape == (64,) and ref.mu_s is None
    ex = DINOv2Extractor.from_file(dino, heads=2)
    with np.load(samples / "samples.npz") as z:
        feats = ex.extract(z["arr_0"])["dinov2"]
    assert m["fd_dinov2"] == pytest.approx(
        fid_metric.frechet_distance(*fid_metric.feature_statistics(feats), ref.mu, ref.sigma), rel=1e-9)
    dc = density_coverage.density_coverage(ref.features, feats, k=5)
    assert (m["density_dinov2"], m["coverage_dinov2"]) == (dc.density, dc.coverage)
    assert res["dinov2"]["reference"]["name"] == "noise_dino" and res["dinov2"]["extractor"]["id"] == ex.id
    assert result["protocol"]["extractor"]["id"] != ex.id  # the protocol's extractor is the Inception one
    assert res["dinov2"]["extractor"]["official_weights"] is False and result["random_weights"] is True
    assert "EDM2" in result["protocol"]["arithmetic"]["fd_dinov2"]
    # its own feature cache: the second run reads it
    cli("fid", samples, "--metrics", "fd_dinov2", "--dinov2-ref", "noise_dino", "--dinov2-weights", dino,
        "--dinov2-heads", 2, "--device", "cpu", "--json", tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())["results"]
    assert again["dinov2"]["features"]["cached"] and again["metrics"]["fd_dinov2"] == m["fd_dinov2"]
    assert again["features"] is None  # no Inception work when only DINOv2 metrics are asked for


def test_dinov2_references_are_never_mixed(real_runs, dino):
    samples = real_runs.generate[1.5]
    assert "need a DINOv2 reference" in _fail("fid", samples, "--metrics", "fd_dinov2")
    assert "holds pool3 statistics" in _fail("fid", samples, "--metrics", "fd_dinov2", "--dinov2-ref", "ci_noise16",
                                              "--dinov2-weights", dino)
    assert "holds dinov2 statistics" in _fail("fid", samples, "--ref", "noise_dino", "--metrics", "fid")
    # other DINOv2 weights (heads) are another extractor id
    assert "built with feature extractor" in _fail("fid", samples, "--metrics", "fd_dinov2", "--dinov2-ref",
                                                   "noise_dino", "--dinov2-weights", dino, "--dinov2-heads", 1)
