"""Density and coverage against the ``prdc`` package (Naeem et al.'s reference code) on the same features, plus
known answers and block-size independence."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import prdc
import pytest

from varbench.errors import VarbenchError
from varbench.metrics.density_coverage import density_coverage


def _prdc(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        return prdc.compute_prdc(real, fake, k)


@pytest.mark.parametrize("n,m,d,shift,scale,k", [(300, 200, 16, 0.0, 1.0, 5), (400, 500, 64, 0.3, 1.2, 5),
                                                  (250, 250, 2048, 0.05, 0.8, 5), (120, 90, 8, 1.0, 0.5, 3)])
def test_equals_prdc(n, m, d, shift, scale, k):
    rng = np.random.default_rng(n + m + d)
    real = rng.normal(size=(n, d)).astype(np.float32)
    fake = (rng.normal(size=(m, d)) * scale + shift).astype(np.float32)
    ref = _prdc(real, fake, k)
    ours = density_coverage(real, fake, k=k, block=97)  # blocks that do not divide the sets
    assert ours.density == pytest.approx(ref["density"], abs=1e-12)
    assert ours.coverage == pytest.approx(ref["coverage"], abs=1e-12)
    assert ours.k == k and ours.distance == "fp64"


def test_known_answers_and_block_independence():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 10))
    # the reference itself: every reference ball holds its own centre, so coverage is exactly 1
    assert density_coverage(real, real).coverage == 1.0
    # samples far away: in no ball at all
    far = density_coverage(real, real[:50] + 100.0)
    assert far.density == 0.0 and far.coverage == 0.0
    fake = rng.normal(size=(200, 10)) * 0.5
    whole = density_coverage(real, fake)
    assert density_coverage(real, fake, block=7) == whole
    # a tight sample cluster at the mode: dense (density > 1) but covering little
    tight = density_coverage(real, rng.normal(size=(200, 10)) * 0.05)
    assert tight.density > 1.0 and tight.coverage < whole.coverage


def test_bad_input_is_one_line():
    with pytest.raises(VarbenchError, match="density/coverage with k=5 needs more than 5"):
        density_coverage(np.zeros((5, 3)), np.zeros((10, 3)))
    with pytest.raises(VarbenchError, match="feature dimensions differ"):
        density_coverage(np.zeros((10, 3)), np.zeros((10, 4)))
