"""What the commands print besides their own lines: whole Polars frames, and library warnings as one-line notes."""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["print_frame", "noted"]


def print_frame(df: Any) -> None:
    """Print a Polars frame whole (every row and column, 4 decimals, no shape or dtypes).

    Parameters
    ----------
    df : pl.DataFrame
        The frame.
    """
    import polars as pl

    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=240, fmt_str_lengths=60,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, float_precision=4):
        typer.echo(str(df))


def noted(fn: Any) -> Any:
    """Call ``fn()``, printing the recsys_lab warnings it raised as one-line ``note:`` lines on stderr.

    Parameters
    ----------
    fn : callable
        Called without arguments.

    Returns
    -------
    Any
        What ``fn`` returned (an error propagates: no notes are printed then).
    """
    import warnings

    from recsys_lab.errors import RecsysLabWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecsysLabWarning)
        out = fn()
    for w in caught:
        if issubclass(w.category, RecsysLabWarning):
            typer.echo(f"note: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return out
