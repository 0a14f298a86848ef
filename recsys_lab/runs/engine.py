"""papermill engine that executes a notebook in this process, and atomic notebook writes for every engine.

``InProcessEngine`` (papermill engine name ``recsys_lab``, registered through the ``papermill.engine`` entry point
and by :func:`register`) runs each code cell in an IPython ``InteractiveShell`` created for the notebook, so a
retrain pays no kernel start-up, no ZeroMQ round trips and no second import of the library. Outputs are captured
into the notebook as a kernel would send them: ``stream`` (stdout/stderr, in order with the rest),
``execute_result`` and ``display_data`` with every MIME type the object offers (HTML tables, inline matplotlib
figures as PNG), and ``error`` with the traceback, so papermill's error handling, nbconvert and JupyterLab read
the executed notebook like one from a kernel. ``--engine kernel`` (papermill's ``nbclient`` engine) stays
available for notebooks that need a real kernel.

A ``BaseException`` raised inside a cell that is not an ``Exception`` (e.g. the run layer's stop request from a
signal handler) is recorded as the cell's error and then re-raised, so execution stops at once.

:func:`register` also puts :class:`AtomicLocalHandler` in front of papermill's local file handler for absolute
paths (the run layer always passes absolute ones): every save of the output notebook is a temp file + rename, so a
crash or a full disk mid-save leaves the previous complete notebook, never a truncated one.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import nbformat
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from papermill.engines import Engine, papermill_engines
from papermill.iorw import LocalHandler, papermill_io
from traitlets.config import Config as TraitletsConfig

from recsys_lab._fs import atomic_write_text

__all__ = ["InProcessEngine", "AtomicLocalHandler", "ENGINE_NAME", "register", "run_inprocess"]

ENGINE_NAME = "recsys_lab"
"""papermill engine name of :class:`InProcessEngine`."""


class AtomicLocalHandler(LocalHandler):
    """papermill's local file handler with atomic writes (temp file in the same folder, fsync, rename)."""

    def write(self, buf: str, path: str) -> None:
        """Write ``buf`` to ``path`` atomically (temp file + rename, honouring the umask).

        Parameters
        ----------
        buf : str
            The notebook's JSON text.
        path : str
            Destination, relative to the handler's working folder unless absolute.
        """
        target = path if os.path.isabs(path) or self._cwd is None else os.path.join(self._cwd, path)
        atomic_write_text(target, buf)


class _Outputs:
    """The outputs of the cell being executed, in arrival order."""

    def __init__(self) -> None:
        self.items: list[nbformat.NotebookNode] = []
        self.execution_count: int | None = None

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        last = self.items[-1] if self.items else None
        if last is not None and last.output_type == "stream" and last.name == name:
            last.text += text
        else:
            self.items.append(nbformat.v4.new_output("stream", name=name, text=text))


class _Stream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` during a cell: text becomes a ``stream`` output."""

    def __init__(self, outputs: _Outputs, name: str) -> None:
        self._outputs, self.name = outputs, name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._outputs.stream(self.name, text)
        return len(text)

    def isatty(self) -> bool:
        return False


class _DisplayHook(DisplayHook):
    """The value of a cell's last expression -> ``execute_result`` (all MIME types; ``;`` still hides it)."""

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict: dict, md_dict: dict | None = None) -> None:
        self.shell._outputs.items.append(nbformat.v4.new_output(
            "execute_result", data=format_dict, metadata=md_dict or {},
            execution_count=self.shell._outputs.execution_count))

    def finish_displayhook(self) -> None:
        self._is_active = False


class _DisplayPublisher(DisplayPublisher):
    """``display(...)`` and inline figures -> ``display_data``."""

    def publish(self, data: dict, metadata: dict | None = None, source: Any = None, *, transient: Any = None,
                update: bool = False, **kwargs: Any) -> None:
        self.shell._outputs.items.append(nbformat.v4.new_output("display_data", data=data,
                                                                 metadata=metadata or {}))

    def clear_output(self, wait: bool = False) -> None:
        self.shell._outputs.items.clear()


class _Shell(InteractiveShell):
    """An IPython shell whose outputs go into the executing cell instead of a terminal."""

    def __init__(self, **kwargs: Any) -> None:
        config = TraitletsConfig()
        config.HistoryManager.enabled = False  # no ~/.ipython history database writes
        # figures are laid out by recsys_lab.report.plots (tight_layout): no second draw to find a tight bounding box
        config.InlineBackend.print_figure_kwargs = {"bbox_inches": None}
        super().__init__(config=config, display_pub_class=_DisplayPublisher, displayhook_class=_DisplayHook,
                         colors="nocolor", **kwargs)
        self._outputs = _Outputs()
        # display() and the inline backend look the shell up as the singleton
        InteractiveShell._instance = self
        _Shell._instance = self

    def enable_gui(self, gui: str | None = None) -> None:  # abstract in InteractiveShell
        pass

    def _showtraceback(self, etype: type, evalue: BaseException, stb: list[str]) -> None:
        self._outputs.items.append(nbformat.v4.new_output(
            "error", ename=getattr(etype, "__name__", str(etype)), evalue=str(evalue), traceback=list(stb)))


def _inline_matplotlib(shell: _Shell) -> None:
    """Inline figures as in a kernel (PNG ``display_data`` after each cell), when matplotlib is installed."""
    try:
        from matplotlib_inline.backend_inline import configure_inline_support
    except ImportError:  # pragma: no cover - matplotlib-inline comes with ipykernel
        return
    configure_inline_support.current_backend = "unset"  # re-register the post-cell hook on this new shell
    with warnings.catch_warnings():  # matplotlib-inline's own use of a deprecated traitlets hook
        warnings.filterwarnings("ignore", message=".*deprecated in traitlets", category=DeprecationWarning)
        shell.enable_matplotlib("inline")


def _hide_figures() -> dict:
    """Detach the figures the host process has open (e.g. a notebook that calls ``execute()``) from pyplot, so the
    inline backend does not show them in this run's cells; :func:`_show_figures` gives them back."""
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return {}
    figs = dict(helpers.Gcf.figs)
    helpers.Gcf.figs.clear()
    return figs


def _show_figures(figs: dict) -> None:
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is not None and figs:
        helpers.Gcf.figs.update(figs)


def _run_cell(shell: _Shell, cell: nbformat.NotebookNode) -> BaseException | None:
    """Execute one code cell, filling ``cell.outputs``; returns the exception raised in it, if any."""
    shell._outputs = _Outputs()
    shell._outputs.execution_count = cell.execution_count = shell.execution_count
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream(shell._outputs, "stdout"), _Stream(shell._outputs, "stderr")
    try:
        result = shell.run_cell(cell.source, store_history=True)
    finally:
        sys.stdout, sys.stderr = out, err
        cell.outputs = shell._outputs.items
    return result.error_before_exec or result.error_in_exec


def _complete_without_saving(nb_man: Any, cell: nbformat.NotebookNode, index: int) -> None:
    """papermill's ``cell_complete`` (end time, duration, status) without its save: the next ``cell_start``, or
    ``notebook_complete`` after the last cell, a failure or a stop, saves microseconds later. Halves the saves of
    a run (each one serialises the whole notebook, figures included, and fsyncs it)."""
    own = vars(nb_man).get("save")
    nb_man.save = lambda **kwargs: None
    try:
        nb_man.cell_complete(cell, cell_index=index)
    finally:
        if own is None:
            del nb_man.save
        else:
            nb_man.save = own


class InProcessEngine(Engine):
    """papermill engine: run the notebook's code cells in an IPython shell inside this process.

    Use through papermill: ``papermill.execute_notebook(src, dst, engine_name="recsys_lab")`` (after
    :func:`register`, or with the package installed, which registers the ``papermill.engine`` entry point).
    The kernel name is ignored; cells run with this interpreter. The shell's namespace is new for every
    notebook, but modules imported by a notebook stay imported in the process (that is the speed-up).
    """

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str | None, **kwargs: Any) -> Any:
        """Execute every code cell of ``nb_man.nb`` in order, stopping at the first failing cell.

        Parameters
        ----------
        nb_man : papermill NotebookExecutionManager
            The notebook and its save hooks.
        kernel_name : str or None
            Ignored: the cells run in this process's IPython shell.
        **kwargs
            papermill's engine options (ignored).

        Returns
        -------
        papermill NotebookExecutionManager's notebook
            ``nb_man.nb`` with its outputs.

        Raises
        ------
        BaseException
            A stop request raised inside a cell (anything not an ``Exception``, e.g. from a signal handler) is
            recorded as the cell's error and re-raised.
        """
        outer = InteractiveShell._instance  # e.g. the kernel of a notebook that called execute()
        shell = _Shell(user_ns={"__name__": "__main__"})
        saved_hooks = sys.displayhook, sys.excepthook
        hosts_figures = _hide_figures()  # the inline backend shows every open figure: only this run's belong here
        try:
            _inline_matplotlib(shell)
            for index, cell in enumerate(nb_man.nb.cells):
                if cell.cell_type != "code":
                    continue
                nb_man.cell_start(cell, index)  # saves the notebook: the previous cell's outputs and this start
                try:
                    error = _run_cell(shell, cell)
                    if error is not None:
                        nb_man.cell_exception(cell, cell_index=index, exception=error)
                        if not isinstance(error, Exception):
                            raise error
                        break
                finally:
                    _complete_without_saving(nb_man, cell, index)
        finally:
            sys.displayhook, sys.excepthook = saved_hooks
            pyplot = sys.modules.get("matplotlib.pyplot")
            if pyplot is not None:
                pyplot.close("all")  # figures of this notebook must not leak into the next one
            _show_figures(hosts_figures)
            shell.cleanup()
            _Shell.clear_instance()
            InteractiveShell.clear_instance()
            if outer is not None:
                InteractiveShell._instance = outer
        return nb_man.nb


def register() -> None:
    """Register :class:`InProcessEngine` as papermill engine ``recsys_lab``, and :class:`AtomicLocalHandler` for
    absolute local paths (scheme ``/``: papermill picks the first registered scheme that prefixes the path, and
    always the oldest ``local`` handler otherwise). Idempotent."""
    papermill_engines.register(ENGINE_NAME, InProcessEngine)
    if not isinstance(papermill_io.get_handler("/x.ipynb"), AtomicLocalHandler):
        papermill_io.register("/", AtomicLocalHandler())


def run_inprocess(notebook: Path, out_nb: Path, params: dict) -> dict:
    """Execute a notebook in this process (papermill with :class:`InProcessEngine`, working folder ``out_nb``'s).

    Parameters
    ----------
    notebook : Path
        The notebook to run.
    out_nb : Path
        The executed notebook (absolute; saved atomically at each cell).
    params : dict
        Injected into the ``parameters`` cell.

    Returns
    -------
    dict
        ``{"status": "succeeded"}``, or ``status`` ``failed`` with the failing cell's ``cell_index``,
        ``exec_count``, ``ename``, ``evalue`` (also when the notebook itself could not be saved, e.g. disk full).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from recsys_lab.runs.record import failing_cell

    register()
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters=params, engine_name=ENGINE_NAME,
                            progress_bar=False, log_output=False, cwd=str(out_nb.parent),
                            request_save_on_cell_execute=True)
        return {"status": "succeeded"}
    except PapermillExecutionError as exc:
        return {"status": "failed", "cell_index": exc.cell_index, "exec_count": exc.exec_count,
                "ename": exc.ename, "evalue": exc.evalue}
    except OSError as exc:  # e.g. the notebook itself could not be saved (disk full)
        return {"status": "failed", **failing_cell(out_nb), "ename": type(exc).__name__, "evalue": str(exc)}

