"""Each `lookalike` line of the README's command list matches the CLI's own --help."""

from __future__ import annotations

import re
from pathlib import Path

from cli import build_parser

README = Path(__file__).resolve().parents[3] / "README.md"


def _subparsers(parser: object) -> dict[str, object]:
    actions = getattr(parser, "_subparsers")._group_actions  # noqa: B009 - argparse internals
    return dict(actions[0].choices)


def test_readme_cli_lines_match_help() -> None:
    block = README.read_text().split("## Command line", 1)[1].split("```sh", 1)[1].split("```")[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines() if "lookalike " in line]
    assert len(lines) >= 10
    commands = _subparsers(build_parser())
    for line in lines:
        words = line.split("lookalike ", 1)[1].split()
        parser = commands[words[0]]
        if words[0] == "apikey":
            parser = _subparsers(parser)[words[1]]
        flags = {s for a in getattr(parser, "_actions") for s in a.option_strings}  # noqa: B009
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line):
            assert flag in flags, f"README: {line!r} uses {flag}, which --help does not list"
        for action in getattr(parser, "_actions"):  # noqa: B009
            if action.required and action.option_strings:
                assert any(s in line for s in action.option_strings), (line, action.option_strings)
