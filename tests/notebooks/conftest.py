"""Running the notebooks of ``notebooks/`` with nbclient, in a kernel of the running Python.

The kernel is the running interpreter's ipykernel, its kernelspec installed into a temporary
``JUPYTER_PATH`` (nothing is downloaded, nothing outside the temporary folder is touched).  A
notebook runs with ``notebooks/`` as its working directory, as in ``jupyter lab notebooks/``;
``MEDPOSE_DATA`` points it to the real data folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "medpose-tests"


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kernelspec of this interpreter, in a temporary JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, prefix=str(prefix))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    ).rstrip(os.pathsep)
    return KERNEL


@pytest.fixture
def run_notebook(kernel_name: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``run_notebook(name, data=None)``: execute ``notebooks/<name>.ipynb`` and check it
    (:func:`check_ran`); the executed notebook is returned.  A cell that raises fails the test
    with its traceback."""
    import nbformat
    from nbclient import NotebookClient

    def run(name: str, data: Path | None = None) -> Any:
        if data is not None:
            monkeypatch.setenv("MEDPOSE_DATA", str(data))
        if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: one thread each
            monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        client = NotebookClient(
            nb,
            timeout=300,
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()
        check_ran(nb)
        return nb

    assert sys.executable  # the kernelspec runs this interpreter
    return run


def outputs(nb: Any) -> list[dict[str, Any]]:
    """Every output of every code cell."""
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def check_ran(nb: Any) -> None:
    """No error output; at least one figure (PNG) and one result shown as HTML."""
    outs = outputs(nb)
    errors = [o for o in outs if o.get("output_type") == "error"]
    assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
    kinds = {k for o in outs for k in o.get("data", {})}
    assert "image/png" in kinds, "no figure was shown"
    assert "text/html" in kinds, "no result was shown as HTML"
