"""The tinyeff command line: one module per command group, each a thin layer over the library
function that does the work (tinyeff.cli.model, .search, .project, .bench, .data, .demo)."""

from __future__ import annotations

import argparse
import sys

from tinyeff import __version__
from tinyeff.cli import bench, data, demo, model, project, search
from tinyeff.errors import TinyeffError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyeff", description="TinyML deployment kit: train, shrink to a KiB budget, full-int8, measure.")
    p.add_argument("--version", action="version", version=f"tinyeff {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (model, search, project, bench, data, demo):  # the order of 'tinyeff --help'
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TinyeffError as e:
        print(f"tinyeff: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyeff: interrupted", file=sys.stderr)
        return 130
