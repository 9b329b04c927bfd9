"""``qsnn --help`` and every subcommand's help are plain text: no reStructuredText markup."""

from __future__ import annotations

import argparse
import re

import pytest

from qsnn import cli

#: backticks (``code``, `ref`), Sphinx roles (:class:, :func:), bold/emphasis markers
MARKUP = re.compile(r"`|:(class|func|mod|meth|attr|data|exc):|\*\*|(?<!\w)\*\w")


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
             ) -> list[tuple[str, ...]]:
    """Every command path of ``parser``: (), ("train",), ("experiment", "schedules"), ..."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += commands(sub, (*prefix, name))
    return paths


def help_text(path: tuple[str, ...], capsys) -> str:
    """What ``qsnn <path> --help`` prints (through :func:`qsnn.cli.main`)."""
    with pytest.raises(SystemExit) as exc:
        cli.main([*path, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def markup(text: str) -> list[str]:
    """The lines of ``text`` with markup."""
    return [line for line in text.splitlines() if MARKUP.search(line)]


def test_every_help_is_plain_text(capsys) -> None:
    paths = commands(cli.build_parser())
    assert {("train",), ("verify",), ("experiment", "schedules"), ("sweep",)} <= set(paths)
    for path in paths:
        text = help_text(path, capsys)
        assert text.startswith("usage: qsnn"), path
        assert markup(text) == [], path


@pytest.mark.parametrize("text", ["The ``qsnn`` command", "see `docs`", "a :class:`X`",
                                  "**bold**", "*emphasis*"])
def test_markup_is_found(text) -> None:
    assert markup(f"plain line\n{text}\n") == [text]


def test_a_backtick_in_a_help_fails(monkeypatch, capsys) -> None:
    """The check above sees what the parser prints: a docstring-style help is caught."""
    monkeypatch.setattr(cli, "DESCRIPTION", "The ``qsnn`` command")
    assert markup(help_text((), capsys)) != []
    monkeypatch.setattr(cli, "_config_help", lambda what: f"``{what}``")
    assert markup(help_text(("train",), capsys)) != []
