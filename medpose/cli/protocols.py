"""``medpose protocols [NAME]``: list the assessment protocols, or describe one."""

from __future__ import annotations

import argparse
from typing import Any

from ..protocol.definition import Protocol, catalogue
from .common import EXIT_OK

__all__ = ["register", "ORDER"]

ORDER = 20


def register(sub: Any) -> None:
    """Add the ``protocols`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "protocols",
        help="list the assessment protocols, or describe one",
        description="Without NAME: one line per protocol of the catalogue (name, version, "
        "title). With NAME (a catalogue name or a protocol .yaml file): check it and describe it.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="protocol name or .yaml file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose protocols``."""
    if args.name is None:
        for protocol in catalogue():
            print(f"{protocol.name}\t{protocol.version}\t{protocol.title}")
        return EXIT_OK
    print(Protocol.load(args.name).describe())
    return EXIT_OK
