"""The README's first-session example runs as written, on a synthetic session folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_names_the_two_commands():
    text = README.read_text()
    head = text[: text.index("## What `make demo` shows")]
    assert "make demo" in head and "make test" in head


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    from medpose.synthetic import make_session

    make_session(tmp_path / "session", seed=2, exercises=("squat",), repetitions=1)
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    code = code.replace('"demo_output/session"', '"."')
    monkeypatch.chdir(tmp_path / "session")
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)
    assert ns["seq"].n_frames > 0 and ns["reg"].fre < 5.0
    assert (tmp_path / "session" / "squat_ik.mot").is_file()
    assert ns["session"].trials
