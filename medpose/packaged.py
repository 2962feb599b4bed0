"""The data files shipped inside the package, under ``medpose/resources/``.

Skeleton, joint ranges and their variants, keypoint tables and layouts are YAML files read with
``yaml.safe_load`` (no object construction).  Each file is read and parsed once per process.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

__all__ = ["resource_text", "resource_yaml"]


@functools.cache
def resource_text(name: str) -> str:
    """The text of the packaged file ``medpose/resources/<name>`` (``name`` may hold ``/``).

    Raises
    ------
    FileNotFoundError
        No such file is packaged.
    """
    return resources.files("medpose.resources").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def resource_yaml(name: str) -> Any:
    """The packaged YAML file ``medpose/resources/<name>``, parsed once.

    The same object is returned on every call: callers must copy before they change it.
    """
    return yaml.safe_load(resource_text(name))
