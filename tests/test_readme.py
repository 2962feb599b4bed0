"""The README and the user docs run as written.

The README's ``medpose`` command lines run in a temporary folder, in the README's order (its
``medpose demo --out demo_output`` is the Makefile's ``make demo`` recipe, checked below), then
the README's Python walk-through and the examples of the user pages run there unchanged: no path
is rewritten.  Links between the docs resolve, and the docs speak of the product, not of its
development.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import medpose as mp
from medpose.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: User pages whose ```python blocks are complete examples, run in order on the demo's folder.
RUNNABLE_PAGES = ("conventions.md", "fit.md", "temporal.md", "synthetic.md")


def code_blocks(path: Path, lang: str) -> list[str]:
    """The fenced code blocks of ``path`` in language ``lang``, verbatim."""
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(), re.S | re.M)


def readme_commands() -> list[list[str]]:
    """The README's ``medpose ...`` command lines (bash blocks), comments stripped, split."""
    lines = [ln for block in code_blocks(README, "bash") for ln in block.splitlines()]
    return [shlex.split(ln, comments=True) for ln in lines if ln.startswith("medpose ")]


def makefile_demo() -> list[str]:
    """The command of the Makefile's ``demo`` recipe, with ``$(BIN)/`` removed."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.+)$", text, re.M)
    assert recipe, "Makefile: no 'demo:' target with a recipe line"
    return shlex.split(recipe.group(1).replace("$(BIN)/", ""))


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Any]]]:
    """A temporary folder where the README's command lines have run, in order.

    Yields the folder and, per command, ``(argv, exit code, stdout and stderr)``.
    """
    folder = tmp_path_factory.mktemp("readme")
    runs = []
    with pytest.MonkeyPatch.context() as mp_:
        mp_.chdir(folder)
        for argv in readme_commands():
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = cli_main(argv[1:])
            runs.append((argv, code, out.getvalue()))
    yield folder, runs


def run_blocks(blocks: list[str], where: str, folder: Path) -> dict[str, Any]:
    """Execute ``blocks`` in order in one namespace with ``folder`` as the working directory."""
    ns: dict[str, Any] = {"__name__": "__docs__"}
    with pytest.MonkeyPatch.context() as mp_:
        mp_.chdir(folder)
        for block in blocks:
            exec(compile(block, where, "exec"), ns)
    return ns


def test_readme_first_screen_names_the_two_commands():
    text = README.read_text()
    head = text[: text.index("## Step by step in Python")]
    for command in ("make demo", "make test"):
        assert command in head, f"README's first screen does not show '{command}'"
    assert "demo_output" in head


def test_readme_demo_line_is_the_makefile_demo():
    assert makefile_demo() in readme_commands()


def test_readme_commands_include_help_demo_and_validate():
    firsts = [argv[:2] for argv in readme_commands()]
    assert ["medpose", "--help"] in firsts
    assert ["medpose", "demo"] in firsts
    assert ["medpose", "validate", "demo_output/sessions/follow-up"] in readme_commands()
    # the demo runs before the session is validated
    assert firsts.index(["medpose", "demo"]) < firsts.index(["medpose", "validate"])


@pytest.mark.slow
def test_readme_commands_run(demo_folder):
    folder, runs = demo_folder
    for argv, code, out in runs:
        assert code == 0, f"{shlex.join(argv)} exited {code}:\n{out}"
    help_out = next(out for argv, _, out in runs if argv[1] == "--help")
    assert "validate" in help_out and "demo" in help_out
    validate_out = next(out for argv, _, out in runs if argv[1] == "validate")
    assert "valid" in validate_out
    assert (folder / "demo_output" / "summary.json").is_file()
    assert (folder / "demo_output" / "study.sqlite").is_file()
    squat = mp.read_mot(folder / "squat.mot")  # medpose fit: Pose2Sim's coordinates
    assert "knee_angle_r" in squat.names and squat.values.shape[0] > 0
    # the demo's lab is Z-up; --y-up stands the body upright on OpenSim's Y-up ground
    fit_out = next(out for argv, _, out in runs if argv[1] == "fit")
    assert "OpenSim's is +y" not in fit_out
    assert np.abs(squat["pelvis_list"]).max() < 30.0


@pytest.mark.slow
def test_readme_python_runs_as_written(demo_folder):
    folder, _ = demo_folder
    blocks = code_blocks(README, "python")
    assert blocks, "README.md has no python block"
    ns = run_blocks(blocks, str(README), folder)
    summary = json.loads((folder / "demo_output" / "summary.json").read_text())
    # the walk-through registers the static trial's median pose: the markers' 1 mm noise averages
    # out over the frames, as in the demo's navigation_check (well under a millimetre)
    assert ns["reg"].fre < 1.0 and summary["registration"]["follow-up"]["fre_mm"] < 1.0
    assert list(ns["reg"].outliers) == summary["registration"]["follow-up"]["outliers"] == []
    # the triangulated squat has the fitted angles' length; the exported angles read back
    session = mp.Session.load(folder / "demo_output" / "sessions" / "follow-up")
    assert ns["seq"].n_frames == session.trial("deep_squat").read_keypoints().n_frames
    exported = mp.read_mot(folder / "squat_ik.mot")
    assert exported.values.shape[0] == ns["seq"].n_frames
    # the default model is Pose2Sim's: knee_angle_r carries medpose's knee_flexion_r, same sense
    knee = exported["knee_angle_r"]
    np.testing.assert_allclose(knee, ns["f"].angles["knee_flexion_r"].to_numpy(), atol=1e-3)
    assert np.abs(exported["pelvis_list"]).max() < 30.0  # upright: y_up=True
    assert {t.name for t in ns["session"].trials} == {"static", "shoulder_abduction", "deep_squat"}


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_doc_examples_run_as_written(demo_folder, page):
    folder, _ = demo_folder
    blocks = code_blocks(DOCS / page, "python")
    assert blocks, f"docs/{page} has no python block"
    run_blocks(blocks, str(DOCS / page), folder)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.exists(), f"{path.name}: link '{target}' points to nothing"


#: Wording of a development log, not of a product's documentation.
HISTORY = (
    "this round",
    "before this round",
    "the issue's",
    "issue #",
    "seed article",
    "after the review",
    "design.md",
    "previous helper",
    "no longer an xfail",
)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_docs_describe_the_product_not_its_history(path):
    text = path.read_text().lower()
    found = [w for w in HISTORY if w in text]
    assert not found, f"{path.name}: development-log wording {found}"
