"""The packaged data files are read through medpose.packaged."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from medpose.packaged import resource_text, resource_yaml


def test_yaml_matches_a_direct_read_of_the_file():
    direct = resources.files("medpose.resources").joinpath("joint_ranges.yaml").read_text("utf-8")
    assert resource_text("joint_ranges.yaml") == direct
    assert resource_yaml("joint_ranges.yaml") == yaml.safe_load(direct)
    assert "ranges" in resource_yaml("joint_ranges.yaml")


def test_nested_paths_and_missing_files():
    layouts = resources.files("medpose.resources").joinpath("layouts")
    first = sorted(p.name for p in layouts.iterdir() if p.name.endswith(".yaml"))[0]
    assert resource_yaml(f"layouts/{first}") is resource_yaml(f"layouts/{first}")  # parsed once
    with pytest.raises(FileNotFoundError):
        resource_text("no_such_file.yaml")
