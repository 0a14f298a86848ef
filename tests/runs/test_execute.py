"""The run layer around a notebook, on tiny synthetic notebooks (fast): the in-process engine's outputs, file
modes, stop signals, time budgets, a full disk, config-file errors. The real retrain notebook is exercised by
test_retrain.py and test_lifecycle.py."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from recsys_lab._fs import atomic_write_json
from recsys_lab.cli import main as cli_module
from recsys_lab.config import Config
from recsys_lab.errors import RunError
from recsys_lab.runs.execute import execute
from recsys_lab.store.folder import RunFolder

from ..conftest import cli

# every gate check off, so a run that succeeds is promotable
NO_GATE = {"gate": {"min": {}, "max_regression": {}, "not_worse_than": []}}
# the notebook decides the gate (the parent never recomputes it): a cell that records a passed gate
GATE_PASSED = ("import json, pathlib\n"
               "pathlib.Path(run_dir, 'gate.json').write_text(json.dumps({'passed': True, 'checks': []}))")


def make_notebook(path: Path, *cells: str) -> Path:
    """A thin notebook: the parameters cell ``execute`` injects into, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("config = {}\nrun_dir = None\nproduction = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, *map(nbformat.v4.new_code_cell, cells)]
    nbformat.write(nb, path)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_inprocess_engine_records_outputs_like_a_kernel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb",
                       "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)",
                       "import polars as pl\npl.DataFrame({'a': [1, 2]})",
                       "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2]);",
                       "x = 41\nx + 1")
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb)
    assert result.status == "succeeded", result.reason
    cells = [c for c in nbformat.read(RunFolder(result.run_dir).notebook, as_version=4).cells if c.cell_type == "code"]
    outs = [[(o.output_type, o.get("name") or sorted(o.get("data", {}))) for o in c.outputs] for c in cells]
    assert outs[2] == [("stream", "stdout"), ("stream", "stderr")]
    assert outs[3] == [("execute_result", ["text/html", "text/plain"])]
    assert outs[4] == [("display_data", ["image/png", "text/plain"])]  # inline figure; ';' hides the return value
    assert cells[5].outputs[0].data["text/plain"] == "42" and cells[5].execution_count == cells[4].execution_count + 1
    assert result.manifest["engine"] == "inprocess"
    from papermill.iorw import papermill_io

    from recsys_lab.runs.engine import AtomicLocalHandler
    assert isinstance(papermill_io.get_handler(str(RunFolder(result.run_dir).notebook)), AtomicLocalHandler)
    assert {"compile", "overhead", "report", "total"} <= set(result.manifest["timings"])


def test_figures_the_host_has_open_stay_out_of_the_run_and_stay_open(tmp_path, monkeypatch):
    """The in-process engine showed every open pyplot figure after each cell, including the host's own (a notebook
    that drew a figure, then called execute()): they landed in the run's notebook and were closed at its end."""
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    host = plt.figure()
    nb = make_notebook(tmp_path / "t.ipynb", "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2]);")
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb)
    assert result.status == "succeeded", result.reason
    cells = [c for c in nbformat.read(RunFolder(result.run_dir).notebook, as_version=4).cells if c.cell_type == "code"]
    assert [o.output_type for o in cells[-1].outputs] == ["display_data"]  # this run's figure only
    assert plt.fignum_exists(host.number)
    plt.close(host)


def test_the_notebook_is_saved_once_per_cell_and_completed_cells_keep_their_state(tmp_path, monkeypatch):
    """papermill saves at each cell's start and end; the engine skips the end's save (the next start saves
    microseconds later): one save per code cell plus papermill's own at start and end (3), every state complete."""
    from recsys_lab.runs import engine as _engine

    monkeypatch.chdir(tmp_path)
    saved: list[dict] = []
    real = _engine.atomic_write_text

    def counting(path, text):
        if str(path).endswith("retrain.ipynb"):
            saved.append(json.loads(text))
        return real(path, text)

    monkeypatch.setattr(_engine, "atomic_write_text", counting)
    nb = make_notebook(tmp_path / "t.ipynb", "x = 1", "y = x + 1", "print(y)")
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb)
    assert result.status == "succeeded", result.reason
    n_code = 5  # parameters, injected parameters, three cells
    assert len(saved) <= n_code + 3, len(saved)  # 13: twice per cell without the skip
    # the save at a cell's start holds the previous cell complete, with its outputs and duration
    code = [i for i, c in enumerate(saved[-1]["cells"]) if c["cell_type"] == "code"]
    (at_last_start,) = [nb["cells"] for nb in saved
                        if nb["cells"][code[-1]]["metadata"]["papermill"]["status"] == "running"]
    assert at_last_start[code[-2]]["metadata"]["papermill"]["status"] == "completed"
    assert at_last_start[code[-2]]["metadata"]["papermill"]["duration"] is not None
    final = saved[-1]["cells"]
    assert all(final[i]["metadata"]["papermill"]["status"] == "completed" for i in code)
    assert "".join(final[code[-1]]["outputs"][0]["text"]) == "2\n"


def test_failing_cell_is_recorded_with_its_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "1 / 0", "print('never')")
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb, promote_if_passed=True)
    assert result.status == "failed" and result.reason.startswith("cell 3 (ZeroDivisionError): division by zero")
    cells = nbformat.read(RunFolder(result.run_dir).notebook, as_version=4).cells
    assert cells[-2].outputs[-1].output_type == "error" and not cells[-1].outputs
    assert result.manifest["promotion"] == {"requested": True, "done": False,
                                            "reason": f"the run failed: {result.reason}"}


def test_files_honour_the_umask(tmp_path, monkeypatch, umask022):
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "print('ok')", GATE_PASSED)
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb, promote_if_passed=True)
    assert result.promoted and result.manifest["promotion"] == {"requested": True, "done": True, "reason": None}
    folder = RunFolder(result.run_dir)
    atomic_write_json(folder.metrics, {"ndcg@10": 0.1})  # as pipeline.Retrain.save writes it
    for path in (folder.report, folder.metrics, folder.run_json, folder.notebook, tmp_path / "runs" / "PRODUCTION"):
        assert _mode(path) == 0o644, path
    os.umask(0o077)
    atomic_write_json(folder.metrics, {"ndcg@10": 0.2})
    assert _mode(folder.metrics) == 0o600


@pytest.mark.slow  # waits on a running CLI retrain
def test_budget_stop_prints_one_line_and_keeps_a_valid_notebook(tmp_path):
    nb = make_notebook(tmp_path / "t.ipynb", "print('started', flush=True)", "import time\ntime.sleep(60)")
    proc = cli("retrain", "--notebook", nb, "--max-minutes", "0.05", "--promote", cwd=tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    # one line; it names the sleeping cell unless a loaded machine spent the whole budget before the first cell
    assert len(lines) == 1 and "TIMED_OUT: " in lines[0], lines
    assert "(TimeoutError): exceeded the time budget of 0.05 min" in lines[0]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "timed_out" and manifest["ended_at"]
    assert manifest["promotion"]["requested"] and not manifest["promotion"]["done"]
    nbformat.validate(nbformat.read(run / "retrain.ipynb", as_version=4))
    assert (run / "report.html").is_file()


def _wait_for_running_cell(runs: Path, source: str, timeout: float = 60) -> list[Path]:
    """The executed notebook once the cell containing ``source`` is running (saves are atomic: always valid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs.glob("*/retrain.ipynb") if runs.is_dir() else []:
            cells = json.loads(path.read_text())["cells"]
            if any(c["metadata"].get("papermill", {}).get("status") == "running" and source in "".join(c["source"])
                   for c in cells):
                return [path]
        time.sleep(0.05)
    raise AssertionError(f"no cell with {source!r} started running")


@pytest.mark.slow  # waits on a running CLI retrain
def test_sigterm_during_a_retrain_records_failed_with_the_signal(tmp_path):
    nb = make_notebook(tmp_path / "t.ipynb", "import time\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-m", "recsys_lab.cli.main", "retrain", "--notebook", str(nb), "--promote"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    nb_out = _wait_for_running_cell(tmp_path / "runs", "time.sleep")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli_module.EXIT_TERMINATED == 143, err
    assert len(err.strip().splitlines()) == 1 and "SIGTERM" in err
    manifest = json.loads((nb_out[0].parent / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["ended_at"]
    assert "stopped by SIGTERM" in manifest["reason"] and manifest["reason"].startswith("cell 3 (SIGTERM)")
    assert manifest["promotion"]["requested"] is True and manifest["promotion"]["done"] is False
    assert not (tmp_path / "runs" / "PRODUCTION").exists()
    nbformat.validate(nbformat.read(nb_out[0], as_version=4))


@pytest.mark.slow  # starts a real Jupyter kernel
def test_sigterm_with_the_kernel_engine_stops_the_child_and_records_the_signal(tmp_path):
    nb = make_notebook(tmp_path / "t.ipynb", "import time\ntime.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-m", "recsys_lab.cli.main", "retrain", "--notebook", str(nb), "--engine",
                             "kernel"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    nb_out = _wait_for_running_cell(tmp_path / "runs", "time.sleep", timeout=120)
    run_dir = nb_out[0].parent
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "FAILED: cell " in err and "(SIGTERM)" in err, err
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["engine"] == "kernel" and manifest["ended_at"]
    nbformat.validate(nbformat.read(nb_out[0], as_version=4))
    # the executor child (and with it its kernel) is gone: nothing still runs this notebook
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _processes_mentioning(str(run_dir)):
        time.sleep(0.2)
    assert not _processes_mentioning(str(run_dir))


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow  # waits on a running CLI retrain
def test_watchdog_ends_a_run_stuck_in_native_code(tmp_path):
    """A main thread that never returns to Python cannot run the signal handler: the watchdog records the run
    and ends the process after the grace period. (Simulated by a handler that does nothing.)"""
    script = textwrap.dedent(f"""
        import json, os, signal, time
        from pathlib import Path
        from recsys_lab.runs.signals import StopSignals
        out = Path({str(tmp_path)!r}) / "stuck.json"
        signals = StopSignals(None, lambda stop: out.write_text(json.dumps([stop.ename, stop.status])),
                                         grace=0.5)
        signals._handler = lambda signum, frame: None
        with signals:
            for sig in signals.SIGNALS:
                signal.signal(sig, signals._handler)
            signals.arm()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert json.loads((tmp_path / "stuck.json").read_text()) == ["SIGTERM", "failed"]


def test_disk_full_late_in_a_run_is_one_line_and_leaves_a_valid_notebook(tmp_path, monkeypatch, capsys):
    """The disk fills up after the third cell: every later write fails (notebook saves, report, manifest)."""
    real_replace = os.replace

    def replace(src, dst):
        if os.environ.get("RECSYS_LAB_TEST_DISK_FULL"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.delenv("RECSYS_LAB_TEST_DISK_FULL", raising=False)
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "import os\nos.environ['RECSYS_LAB_TEST_DISK_FULL'] = '1'",
                       "print('late')")
    try:
        code = cli_module.main(["retrain", "--notebook", str(nb)])
    finally:
        os.environ.pop("RECSYS_LAB_TEST_DISK_FULL", None)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "No space left on device" in err[0] and "Traceback" not in err[0], err
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    if (run / "retrain.ipynb").exists():
        nbformat.validate(nbformat.read(run / "retrain.ipynb", as_version=4))
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "is a directory"),
    (lambda d: d / "missing.toml", "does not exist"),
    (lambda d: (d / "latin1.toml").write_bytes("[data]\npath = 'caf\xe9'\n".encode("latin-1")) and d / "latin1.toml",
     "is not UTF-8"),
    (lambda d: (d / "bad.toml").write_text("[model\nepochs = 3\n") and d / "bad.toml", "is not valid TOML"),
])
def test_config_file_errors_are_one_line_with_exit_2(tmp_path, make, message):
    path = make(tmp_path)
    for command in ("retrain", "config"):
        proc = cli(command, "-c", path, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: config file ") and message in lines[0], lines
        assert str(path) in lines[0]


def test_init_creates_a_project_folder_that_retrain_and_lab_use(tmp_path):
    from recsys_lab.runs.project import NOTEBOOKS, default_notebook, notebooks_dir

    proc = cli("init", "demo", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    demo = tmp_path / "demo"
    for name in NOTEBOOKS:
        assert (demo / "notebooks" / name).read_bytes() == (notebooks_dir() / name).read_bytes()
    assert (demo / "runs").is_dir() and (demo / "warehouse").is_dir()
    assert Config.from_dict(__import__("tomllib").loads((demo / "config.toml").read_text())) == Config()
    assert default_notebook(demo) == demo / "notebooks" / "retrain.ipynb"  # the project's own notebook runs
    assert default_notebook(tmp_path) == notebooks_dir() / "retrain.ipynb"
    lab = cli("lab", "--dry-run", cwd=demo, timeout=120)
    assert lab.returncode == 0 and f"--notebook-dir={demo / 'notebooks'}" in lab.stdout
    # a second init keeps what the user changed, unless --force
    (demo / "config.toml").write_text("[model]\nepochs = 3\n")
    assert cli("init", "demo", cwd=tmp_path, timeout=120).returncode == 0
    assert (demo / "config.toml").read_text() == "[model]\nepochs = 3\n"
    assert cli("init", "demo", "--force", cwd=tmp_path, timeout=120).returncode == 0
    assert "[gate.min]" in (demo / "config.toml").read_text()
    (tmp_path / "file").write_text("")
    bad = cli("init", "file", cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "exists and is not a folder" in bad.stderr


def test_a_run_that_recorded_no_gate_is_never_promoted(tmp_path, monkeypatch):
    """The parent never recomputes the notebook's gate: without gate.json the gate fails closed, naming it."""
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "print('ok')")
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb, promote_if_passed=True)
    assert result.status == "succeeded" and not result.promoted and not result.gate.passed
    assert "gate.json missing" in result.gate.reason


@pytest.mark.parametrize("signum, status, ename", [(signal.SIGALRM, "timed_out", "TimeoutError"),
                                                   (signal.SIGTERM, "failed", "SIGTERM")])
def test_a_stop_that_the_interrupted_code_turns_into_its_own_exception_is_still_the_stop(tmp_path, monkeypatch,
                                                                                      signum, status, ename):
    """issue 17: a budget expiring inside a DuckDB query was recorded `failed`: DuckDB turns the interrupt into its
    own exception. The status comes from the stop that was requested, not from the exception type."""
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "print('started')",
                       "import signal\ntry:\n"
                       f"    signal.raise_signal({int(signum)})  # the stop arrives inside the query\n"
                       "except BaseException:\n"
                       "    raise RuntimeError('Query interrupted') from None  # what DuckDB raises instead",
                       GATE_PASSED)
    result = execute(Config.from_dict({**NO_GATE, "run": {"max_minutes": 10}}), runs_dir="runs", notebook=nb,
                     promote_if_passed=True)
    assert result.status == status and not result.promoted, result.reason
    assert result.reason.startswith(f"cell 4 ({ename}): ") and "the cell raised RuntimeError: Query interrupted" \
        in result.reason, result.reason
    assert result.signal == (None if signum == signal.SIGALRM else signum)
    assert result.manifest["status"] == status and result.manifest["error"]["ename"] == ename


def test_a_promotion_by_hand_rewrites_the_report_card(tmp_path, monkeypatch):
    """`runs promote` moved PRODUCTION but left report.html saying "Not promoted": the card is rendered again from
    the record, and a --force promotion names the refusal it overrode."""
    from recsys_lab.runs import registry

    monkeypatch.chdir(tmp_path)
    held = execute(Config.from_dict(NO_GATE), runs_dir="runs",
                   notebook=make_notebook(tmp_path / "a.ipynb", GATE_PASSED))
    report = held.run_dir / "report.html"
    assert "promotion was not requested" in report.read_text()
    registry.promote("runs", held.run_id)
    text = report.read_text()
    assert f"Promoted by hand: run {held.run_id} passed its gate" in text and "not requested" not in text
    assert json.loads((held.run_dir / "run.json").read_text())["promotion"]["by"] == "hand"

    failing = ("import json, pathlib\npathlib.Path(run_dir, 'gate.json').write_text(json.dumps("
               "{'passed': False, 'checks': []}))")
    refused = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=make_notebook(tmp_path / "b.ipynb", failing))
    with pytest.raises(RunError, match="failed its gate"):
        registry.promote("runs", refused.run_id)
    registry.promote("runs", refused.run_id, force=True)
    text = (refused.run_dir / "report.html").read_text()
    assert f"Promoted by hand with --force: run {refused.run_id} failed its gate" in text


def test_a_serve_token_in_the_config_never_reaches_the_run_folder(tmp_path, monkeypatch):
    """The token guarding POST /events, set in the config, was written into every run.json (and the notebook's
    injected parameters): a run records "<redacted>" in its place."""
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "print(config['serve']['token'])", GATE_PASSED)
    result = execute(Config.from_dict({**NO_GATE, "serve": {"token": "s3cret-t0ken"}}), runs_dir="runs",
                     notebook=nb)
    assert result.status == "succeeded", result.reason
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert files and not [p for p in files if b"s3cret-t0ken" in p.read_bytes()]
    assert json.loads((result.run_dir / "run.json").read_text())["config"]["serve"]["token"] == "<redacted>"


def test_a_stop_that_lands_in_the_engine_outside_any_cell_is_still_the_stop(tmp_path, monkeypatch):
    """CI flake of the 0.12 s budget test: the budget's Stop landed in code of the engine itself (an import's class
    creation), which turned it into a RuntimeError that escaped as a traceback. Any error raised while a stop was
    requested is the stop: recorded timed_out, never promoted."""
    import recsys_lab.runs.engine as engine

    def engine_hit_by_the_budget(notebook, out, params):
        signal.raise_signal(signal.SIGALRM)  # the armed budget's signal: the handler raises Stop here
        raise AssertionError("unreachable")

    def swallowing(notebook, out, params):
        try:
            engine_hit_by_the_budget(notebook, out, params)
        except BaseException as exc:
            raise RuntimeError("error in class creation") from exc

    monkeypatch.setattr(engine, "run_inprocess", swallowing)
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "t.ipynb", "print('never runs')", GATE_PASSED)
    result = execute(Config.from_dict({**NO_GATE, "run": {"max_minutes": 10}}), runs_dir="runs", notebook=nb,
                     promote_if_passed=True)
    assert result.status == "timed_out" and not result.promoted, result.reason
    assert result.manifest["error"]["ename"] == "TimeoutError"


@pytest.mark.slow  # waits on a running CLI retrain
def test_a_budget_expiring_inside_a_duckdb_query_is_timed_out_exit_4(tmp_path):
    # one DuckDB thread: the main thread then returns to check for signals between tasks and DuckDB raises its own
    # RuntimeError('Query interrupted'); with more threads it may not return at all (the watchdog's case, also exit 4)
    nb = make_notebook(tmp_path / "t.ipynb", "import duckdb\ncon = duckdb.connect()\ncon.execute('SET threads = 1')\n"
                       "print('started', flush=True)",
                       "con.sql('SELECT sum(hash(range)) FROM range(100000000000)').pl()")
    proc = cli("retrain", "--notebook", nb, "--max-minutes", "0.05", "--promote", cwd=tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stderr
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "timed_out" and manifest["error"]["ename"] == "TimeoutError"
    assert "Query interrupted" in manifest["reason"] and not manifest["promotion"]["done"], manifest["reason"]


def test_a_retrain_start_settles_what_a_kill_left_and_refuses_a_pointer_that_names_no_run(tmp_path, monkeypatch):
    """A promotion killed after the pointer moved is recorded done, a stale temp file is removed, before the run
    starts; a PRODUCTION holding a path or an unknown id stops the retrain before any run folder exists."""
    from recsys_lab._fs import temp_file_for

    from .conftest import plant_run

    monkeypatch.chdir(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    a = plant_run(tmp_path / "runs", "20260101T000000Z-aaaaaa", promotion={
        "requested": True, "done": False, "reason": "gate passed; promoting",
        "pending": {"previous": None, "pid": dead.pid, "host": os.uname().nodename, "since": "2026-01-01"}})
    (tmp_path / "runs" / "PRODUCTION").write_text(a.name + "\n")
    stale = temp_file_for(a / "run.json")
    os.utime(stale, (1e9, 1e9))
    nb = make_notebook(tmp_path / "t.ipynb", "print(production)")
    result = execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb)
    assert result.status == "succeeded", result.reason
    manifest = json.loads((a / "run.json").read_text())
    assert manifest["promoted"] is True and manifest["promotion"] == {"requested": True, "done": True, "reason": None}
    assert not stale.exists()
    for pointer in ("../elsewhere", "20991231T000000Z-zzzzzz"):
        (tmp_path / "runs" / "PRODUCTION").write_text(pointer + "\n")
        before = sorted((tmp_path / "runs").iterdir())
        with pytest.raises(RunError, match="PRODUCTION: "):
            execute(Config.from_dict(NO_GATE), runs_dir="runs", notebook=nb)
        assert sorted((tmp_path / "runs").iterdir()) == before


def test_the_watchdog_leaves_a_promotion_intent_for_the_next_start(tmp_path):
    """A run stuck while promoting has recorded its outcome: the watchdog must not overwrite it, nor the intent with
    `done: false` (the pointer may have moved); the next start settles it."""
    from recsys_lab.runs.execute import _on_stuck
    from recsys_lab.runs.signals import Stop

    from .conftest import plant_run

    intent = {"previous": None, "pid": os.getpid(), "host": os.uname().nodename, "since": "2026-01-01"}
    promotion = {"requested": True, "done": False, "reason": "gate passed; promoting", "pending": intent}
    d = plant_run(tmp_path / "runs", "20260101T000000Z-aaaaaa", status="succeeded", promotion=promotion)
    _on_stuck(RunFolder(d), True)(Stop(signal.SIGTERM))
    manifest = json.loads((d / "run.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["promotion"] == promotion
