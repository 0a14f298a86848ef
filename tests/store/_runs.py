"""A small saved run written the way a retrain writes it (:func:`recsys_lab.store.artifacts.save_artifacts`), on
generated data: 8 users x 6 items over 16 days, a cut-off after day 12, a 1-epoch LightFM. No retrain, no index."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_json
from recsys_lab.config import Config, FeatureConfig, ModelConfig
from recsys_lab.data.warehouse import ingest
from recsys_lab.features import build_dataset
from recsys_lab.models import lightfm
from recsys_lab.store.artifacts import save_artifacts
from recsys_lab.store.folder import PRODUCTION, RunFolder

CUTOFF = "2020-01-13T00:00:00+00:00"


def tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Users 1..8 (user 8 only after the cut-off: cold), items 1..6 (item 6 never seen), weights 1..5."""
    rng = np.random.default_rng(0)
    rows = [(u, i) for u in range(1, 8) for i in rng.choice(np.arange(1, 6), size=3, replace=False)]
    rows += [(8, 1), (8, 2)]
    inter = pl.DataFrame({"user_id": [u for u, _ in rows], "item_id": [int(i) for _, i in rows],
                          "weight": [5.0, 4.0, 2.0] * 7 + [5.0, 4.0]})
    days = [1 + (j % 12) for j in range(len(rows) - 2)] + [15, 16]
    inter = inter.with_columns(pl.Series("ts", [f"2020-01-{d:02d}T00:00:00Z" for d in days])
                               .str.to_datetime(time_zone="UTC"))
    users = pl.DataFrame({"user_id": list(range(1, 9)), "gender": ["M", "F"] * 4})
    items = pl.DataFrame({"item_id": list(range(1, 7)), "title": list("ABCDEF"),
                          "release_date": [date(1995, 1, 1)] * 6})
    return inter, users, items


def write_run(runs_dir: Path, warehouse: Path, run_id: str = "20200101T000000Z-aaaaaa", *,
              production: bool = True) -> RunFolder:
    """Ingest the tables, fit, and save a succeeded run ``runs_dir/run_id`` (the production run by default)."""
    inter, users, items = tables()
    snap = ingest({"interactions": inter, "users": users, "items": items}, warehouse, source="generated")
    ds = build_dataset(inter, users, items, FeatureConfig())
    train_rows = ds.interactions.filter(pl.col("ts") < pl.lit(CUTOFF).str.to_datetime(time_zone="UTC"))
    u, i, w = (train_rows[c].to_numpy() for c in ("user_idx", "item_idx", "weight"))
    seen = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=ds.shape)
    pos = sp.csr_matrix((np.ones(int((w >= 4).sum()), np.float32), (u[w >= 4], i[w >= 4])), shape=ds.shape)
    fit = lightfm.fit(pos, ds.user_features.matrix, ds.item_features.matrix,
                      ModelConfig(no_components=4, epochs=1, num_threads=1, patience=0))
    uv, iv = lightfm.embeddings(fit.model, ds.user_features.matrix, ds.item_features.matrix)
    config = Config().replace({"data.warehouse": str(warehouse), "model.no_components": 4})
    folder = RunFolder.create(runs_dir, {"status": "succeeded", "config": config.to_dict(),
                                         "data": {"snapshot": snap.id, "split": {"cutoff": CUTOFF}}}, run_id=run_id)
    save_artifacts(folder, users=ds.users, items=ds.items, user_vecs=uv, item_vecs=iv, seen=seen, positives=pos,
                   user_tokens=ds.user_features.tokens, item_tokens=ds.item_features.tokens, model=fit.model)
    atomic_write_json(folder.metrics, {"ndcg@10": 0.5})
    if production:
        (Path(runs_dir) / PRODUCTION).write_text(run_id + "\n")
    return folder
