"""docs/metrics.md: its example runs as written and its stated numbers hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


@pytest.fixture(scope="module")
def example() -> dict:
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.S | re.M)
    assert blocks, "docs/metrics.md has no python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    return namespace


def test_the_example_runs_and_gives_what_its_comments_say(example):
    assert float(example["count"]) == 2
    assert example["rom"].unit == "deg" and example["rom"].value.shape == (2,)
    # P98 - P2 of a half-cosine excursion to 80 deg, trimmed of its rest by the segmentation
    assert np.all((example["rom"].value > 70) & (example["rom"].value <= 80))
    np.testing.assert_allclose(example["si"].value, 0.1 / 0.95 * 100)
    assert example["smooth"].ok.all() and example["jerk"].ok.all()
    assert list(example["table"].columns) == ["repetition", "sparc", "cutoff_hz", "nfft", "reason"]
    low, high = example["ci"].value
    assert low <= np.mean(example["peak"].value) <= high
    assert float(example["pace"]) > 0
