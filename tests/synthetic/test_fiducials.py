from __future__ import annotations

import numpy as np
import pytest

from medpose import InputError
from medpose.synthetic import head_fiducials


def test_points_lie_on_the_ellipsoid_and_are_distinct():
    x = head_fiducials(10)
    assert x.shape == (10, 3)
    np.testing.assert_allclose(
        (x[:, 0] / 80) ** 2 + (x[:, 1] / 100) ** 2 + (x[:, 2] / 70) ** 2, 1.0, atol=1e-12
    )
    assert np.all(x[:, 2] > 0)  # upper part
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(10) * 1e9
    assert d.min() > 20.0


@pytest.mark.parametrize(
    "kw, match", [({"n": 0}, "n must be >= 1"), ({"n": 4, "semi_axes": (80, -1, 70)}, "semi_axes")]
)
def test_bad_input(kw, match):
    with pytest.raises(InputError, match=match):
        head_fiducials(**kw)
