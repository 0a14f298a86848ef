import subprocess
import sys
import textwrap

import polars as pl
import pytest

from recsys_lab.data.warehouse import (
    content_hash,
    ingest,
    list_snapshots,
    open_snapshot,
)
from recsys_lab.errors import DataError


def _tables(tiny_tables):
    inter, users, items = tiny_tables
    return {"interactions": inter, "users": users, "items": items}


def test_reingesting_identical_data_is_a_noop(tiny_tables, tmp_path):
    t = _tables(tiny_tables)
    a = ingest(t, tmp_path, source="tiny")
    mtime = a.path.stat().st_mtime_ns
    shuffled = {k: v.sample(fraction=1.0, shuffle=True, seed=3) for k, v in t.items()}
    b = ingest(shuffled, tmp_path, source="tiny again")
    assert a.id == b.id and a.path == b.path
    assert a.path.stat().st_mtime_ns == mtime  # the snapshot file was not rewritten
    assert len(list((tmp_path / "snapshots").glob("*.duckdb"))) == 1
    assert not list((tmp_path / "snapshots").glob(".*"))  # no temp files left


def test_changed_data_gives_a_new_snapshot_and_old_one_is_unchanged(tiny_tables, tmp_path):
    t = _tables(tiny_tables)
    a = ingest(t, tmp_path)
    t2 = dict(t, interactions=t["interactions"].with_columns(pl.col("weight").clip(upper_bound=4.0)))
    b = ingest(t2, tmp_path)
    assert a.id != b.id
    assert open_snapshot(a.id, tmp_path).table("interactions")["weight"].max() == 5.0
    assert open_snapshot("latest", tmp_path).id == b.id
    assert list_snapshots(tmp_path).height == 2


def test_snapshot_tables_and_sql(tiny_tables, tmp_path):
    snap = ingest(_tables(tiny_tables), tmp_path, source="tiny")
    assert snap.info()["n_interactions"] == 12 and snap.info()["source"] == "tiny"
    top = snap.sql("SELECT item_id, count(*) AS n FROM interactions GROUP BY item_id ORDER BY n DESC, item_id LIMIT 1")
    assert top.row(0) == (1, 4)
    assert snap.hash == content_hash(_tables(tiny_tables))
    with pytest.raises(DataError, match="no table 'ratings'"):
        snap.table("ratings")


def test_open_notebook_connection_does_not_block_a_retrain(tiny_tables, tmp_path):
    """A notebook holding a snapshot open (read-only, another process) must not block ingest or reads."""
    snap = ingest(_tables(tiny_tables), tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(snap.path)!r}, read_only=True)
        con.execute("SELECT count(*) FROM interactions").fetchall()
        print("open", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        again = ingest(_tables(tiny_tables), tmp_path)  # same data: no-op, reads the held snapshot
        assert again.table("interactions").height == 12
        t = _tables(tiny_tables)
        new = ingest(dict(t, interactions=t["interactions"].head(10)), tmp_path)
        assert new.table("interactions").height == 10
    finally:
        holder.kill()
        holder.wait()


def test_missing_snapshot_errors(tmp_path):
    with pytest.raises(DataError, match="no snapshot yet"):
        open_snapshot("latest", tmp_path)
    with pytest.raises(DataError, match="missing"):
        ingest({"interactions": pl.DataFrame()}, tmp_path)
