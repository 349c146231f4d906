"""Shared fixtures: the two implementations and their tutorial defaults."""

import pytest

from linreg import gluon, scratch
from linreg.config import GLUON, SCRATCH

DEFAULTS = {scratch: SCRATCH, gluon: GLUON}

# Learned parameters against the true ones: the bound. The label noise
# (std 0.01 over 1000 examples) moves OLS itself by about 3e-4 from the truth.
TRUE_TOL = 1e-2
# Learned parameters against OLS on the same sample. Measured over seeds 0-19:
# the largest |learned - OLS| was 5.9e-4 (scratch) and 1.3e-3 (Gluon), the SGD
# noise of a constant step; 3e-3 leaves about 2x headroom over the worst seed.
OLS_TOL = 3e-3


@pytest.fixture(params=[scratch, gluon], ids=["scratch", "gluon"])
def impl(request):
    """Each test that takes `impl` runs once per implementation."""
    return request.param


def defaults(impl, **changes):
    """The implementation's tutorial configuration with some fields changed."""
    return DEFAULTS[impl].replace(**changes)
