"""The notebooks on synthetic patients run without error, show figures and HTML results, and
are stored without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def test_the_five_notebooks_are_there():
    assert ALL == [
        "01_quickstart",
        "02_registration_tre",
        "03_real_four_cameras",
        "04_uiprmd_scores",
        "05_cohort",
    ]


@pytest.mark.parametrize("name", ALL)
def test_stored_without_outputs(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    for k, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}: cell {k} is stored with outputs"
            assert cell["execution_count"] is None, f"{name}: cell {k} has an execution count"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_quickstart", "02_registration_tre", "05_cohort"])
def test_notebook_runs(run_notebook, name):
    run_notebook(name)
