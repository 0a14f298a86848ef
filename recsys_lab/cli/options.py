"""Options several commands share, declared once (flags, metavar, type; the help may say what the option means to
each command), and turning ``--config`` / ``-p`` / ``--data`` into a :class:`recsys_lab.config.Config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from recsys_lab.config import Config, load_config, parse_value
from recsys_lab.errors import ConfigError

__all__ = ["RUNS_DIR", "config_option", "param_option", "data_option", "run_option", "k_option", "json_option",
           "build_config", "merge_pairs"]

RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Parent folder of the run folders.")
"""``--runs-dir``: the runs directory of every command that reads or writes runs."""


def config_option(help: str) -> Any:  # noqa: A002 - typer's own keyword
    """``--config / -c FILE``: a TOML config file.

    Parameters
    ----------
    help : str
        What the file is for in this command.

    Returns
    -------
    typer.models.OptionInfo
        The option (default None).
    """
    return typer.Option(None, "--config", "-c", help=help)


def param_option(help: str = "Override.") -> Any:  # noqa: A002
    """``-p / --param NAME VALUE`` (repeatable; ``NAME=VALUE`` too, see :func:`merge_pairs`).

    Parameters
    ----------
    help : str
        The help text.

    Returns
    -------
    typer.models.OptionInfo
        The option (default None: no override).
    """
    return typer.Option(None, "-p", "--param", metavar="NAME VALUE", help=help)


def data_option(help: str = "MovieLens 100k directory or zip.") -> Any:  # noqa: A002
    """``--data PATH``: the MovieLens 100k directory or zip (sets ``data.path``).

    Parameters
    ----------
    help : str
        The help text.

    Returns
    -------
    typer.models.OptionInfo
        The option (default None).
    """
    return typer.Option(None, "--data", help=help)


def run_option(default: Optional[str], help: str) -> Any:  # noqa: A002
    """``--run REF``: a run reference (id, unique prefix, ``production`` or ``latest``).

    Parameters
    ----------
    default : str or None
        The command's default reference.
    help : str
        The help text.

    Returns
    -------
    typer.models.OptionInfo
        The option.
    """
    return typer.Option(default, "--run", help=help)


def k_option(help: str) -> Any:  # noqa: A002
    """``-k N``: how many items (default 10).

    Parameters
    ----------
    help : str
        The help text.

    Returns
    -------
    typer.models.OptionInfo
        The option.
    """
    return typer.Option(10, "-k", help=help)


def json_option(help: str) -> Any:  # noqa: A002
    """``--json``: machine-readable output.

    Parameters
    ----------
    help : str
        The help text.

    Returns
    -------
    typer.models.OptionInfo
        The flag (default False).
    """
    return typer.Option(False, "--json", help=help)


def build_config(config: Optional[Path], params: Optional[list[str]], data: Optional[Path],
                 base: Optional[Config] = None) -> Config:
    """The configuration a command runs with: ``base`` or ``config`` (or the defaults), ``-p`` and ``--data`` applied.

    Parameters
    ----------
    config : Path or None
        ``--config`` file.
    params : list of str or None
        ``NAME=VALUE`` overrides (values parsed as TOML literals where they parse).
    data : Path or None
        ``--data``: sets ``data.path``.
    base : Config, optional
        Start from this configuration instead of ``config`` (``retrain --like``).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        A malformed override, an unknown parameter, or an unreadable config file.
    """
    overrides = {}
    for pair in params or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME VALUE or NAME=VALUE, got {pair!r}", parameter=pair)
        overrides[name] = parse_value(value)
    if data is not None:
        overrides["data.path"] = str(data)
    if base is not None:
        return base.replace(overrides)
    return load_config(config, overrides)


def merge_pairs(argv: list[str]) -> list[str]:
    """Rewrite ``-p NAME VALUE`` as ``-p NAME=VALUE`` (typer has no options taking pairs); both forms work.

    Parameters
    ----------
    argv : list of str
        The command line after the program name.

    Returns
    -------
    list of str
        The same arguments with every pair joined.

    Raises
    ------
    UsageError
        ``-p NAME`` without a value at the end of the line.
    """
    from recsys_lab.cli.exits import UsageError

    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-p", "--param") and i + 1 < len(argv) and "=" not in argv[i + 1]:
            if i + 2 >= len(argv):
                raise UsageError(f"{tok} takes NAME VALUE, got only {argv[i + 1]!r}")
            out += [tok, f"{argv[i + 1]}={argv[i + 2]}"]
            i += 3
            continue
        out.append(tok)
        i += 1
    return out
