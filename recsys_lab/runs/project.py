"""The project folder: where the shipped notebooks are, which retrain notebook a command uses, and ``init``.

A project folder holds ``notebooks/`` (thin notebooks, opened by hand with the project's ``warehouse/`` and ``runs/``
as their defaults), ``config.toml``, ``runs/`` and ``warehouse/``. A clone of the repository is one; ``recsys-lab
init DIR`` makes one for people who install the package. The notebooks ship inside the package
(``recsys_lab/notebooks/`` in the wheel, mapped from the repository's ``notebooks/`` by ``pyproject.toml``), so an
installed ``recsys-lab retrain`` works from any folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from recsys_lab._fs import atomic_write_text
from recsys_lab.config import Config
from recsys_lab.errors import RunError

__all__ = ["NOTEBOOKS", "notebooks_dir", "default_notebook", "init_project"]

NOTEBOOKS = ("retrain.ipynb", "explore.ipynb", "compare_models.ipynb", "cold_start.ipynb", "embeddings.ipynb")
"""The notebooks shipped with recsys_lab."""

_PACKAGE = Path(__file__).resolve().parent.parent


def notebooks_dir() -> Path:
    """The shipped notebooks: ``recsys_lab/notebooks/`` of an installed wheel, else ``notebooks/`` of the checkout
    holding this package (editable installs and ``PYTHONPATH`` use).

    Returns
    -------
    Path
        The first of the two directories that holds ``retrain.ipynb``.

    Raises
    ------
    RunError
        Neither exists (a broken installation).
    """
    for candidate in (_PACKAGE / "notebooks", _PACKAGE.parent / "notebooks"):
        if (candidate / "retrain.ipynb").is_file():
            return candidate
    raise RunError(f"no notebooks found in {_PACKAGE / 'notebooks'} or {_PACKAGE.parent / 'notebooks'}: "
                   "reinstall recsys_lab")


def default_notebook(cwd: str | Path | None = None) -> Path:
    """The retrain notebook a command runs.

    Parameters
    ----------
    cwd : str or Path, optional
        The project folder (default: the current folder).

    Returns
    -------
    Path
        ``cwd/notebooks/retrain.ipynb`` when it exists (the notebook a researcher edits is the one the scheduler
        runs), else the one shipped with recsys_lab (:func:`notebooks_dir`).
    """
    local = Path(cwd or Path.cwd()) / "notebooks" / "retrain.ipynb"
    return local if local.is_file() else notebooks_dir() / "retrain.ipynb"


def init_project(directory: str | Path, *, force: bool = False) -> list[Path]:
    """Create a project folder: ``notebooks/`` (copies of the shipped notebooks), ``config.toml`` (every default,
    documented in :mod:`recsys_lab.config`), ``runs/`` and ``warehouse/``.

    Parameters
    ----------
    directory : str or Path
        The folder (created if missing; may already hold other files).
    force : bool
        Overwrite notebooks and ``config.toml`` that already exist (default: keep them).

    Returns
    -------
    list of Path
        The files and folders created or overwritten.

    Raises
    ------
    RunError
        ``directory`` exists and is not a folder, or nothing could be created there.
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise RunError(f"{root}: exists and is not a folder")
    created: list[Path] = []
    try:
        for sub in ("notebooks", "runs", "warehouse"):
            if not (root / sub).is_dir():
                (root / sub).mkdir(parents=True)
                created.append(root / sub)
        src = notebooks_dir()
        for name in NOTEBOOKS:
            dst = root / "notebooks" / name
            if force or not dst.exists():
                shutil.copyfile(src / name, dst)
                created.append(dst)
        config = root / "config.toml"
        if force or not config.exists():
            atomic_write_text(config, "# recsys_lab configuration: every default; see recsys_lab/config.py.\n"
                                      "# Use it with `recsys-lab retrain -c config.toml`.\n" + Config().to_toml())
            created.append(config)
    except OSError as exc:
        raise RunError(f"{root}: cannot create the project folder ({exc.strerror or exc})") from exc
    return created
