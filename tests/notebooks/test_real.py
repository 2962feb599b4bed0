"""The notebooks on real recordings (../shared/data: Pose2Sim's four cameras, UI-PRMD) run
without error and show figures and HTML results.  Skipped only where the data folder is absent
(tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("name", ["03_real_four_cameras", "04_uiprmd_scores"])
def test_real_data_notebook_runs(run_notebook, shared_data, name):
    run_notebook(name, data=shared_data)
