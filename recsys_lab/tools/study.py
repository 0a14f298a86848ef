"""Evaluation studies behind the defaults: split protocols side by side, and the gate's false-failure rate.

``recsys-lab study protocols`` fits the model and every baseline under each split protocol and prints NDCG@k with
95 % intervals, the number of users, and the paired difference to the best baseline. ``recsys-lab study
gate-noise`` retrains the same model on identical data with different seeds (run-to-run variation, as two
threads give in production) and counts how often a (production, candidate) pair of these equivalent models
fails the regression gate under the old rule (relative drop of the mean > 10 % on the global temporal split)
and the current one (paired: production significantly better *and* a drop > 10 %).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable

from recsys_lab.evaluation import ranking as evaluation
from recsys_lab.models import lightfm as models
from recsys_lab.config import Config
from recsys_lab.evaluation.intervals import paired_difference

__all__ = ["protocols", "gate_noise"]


def protocols(config: Config | None = None, *, methods: tuple[str, ...] = ("time_global", "time_per_user", "random"),
              echo: Callable[[str], None] = print) -> list[dict]:
    """Model and baselines under each split protocol, on the same data.

    Parameters
    ----------
    config : Config, optional
        Data, model and baselines (default ``Config()``: MovieLens 100k, every baseline).
    methods : tuple of str
        ``split.method`` values to compare.
    echo : callable
        Where the table lines go.

    Returns
    -------
    list of dict
        One row per protocol: ``method, users, ndcg, ci_low, ci_high`` of the model, ``baselines`` (name ->
        (ndcg, ci_low, ci_high)), ``best``, and the paired difference model - best baseline
        (``diff, diff_low, diff_high``).
    """
    from recsys_lab.pipeline import Retrain

    cfg = config or Config()
    k = cfg.eval.k
    rows = []
    for method in methods:
        job = Retrain(cfg.replace({"split.method": method}))
        job.ingest()
        job.build_features()
        job.fit()
        m = job.evaluate()
        base = {b: (m[f"baseline.{b}.ndcg@{k}"], m[f"baseline.{b}.ndcg@{k}.ci_low"], m[f"baseline.{b}.ndcg@{k}.ci_high"])
                for b in job.per_user if b != "model"}
        best = max(base, key=lambda b: base[b][0])
        row = {"method": method, "users": m["eval.n_users"], "ndcg": m[f"ndcg@{k}"], "ci_low": m[f"ndcg@{k}.ci_low"],
               "ci_high": m[f"ndcg@{k}.ci_high"], "baselines": base, "best": best,
               "diff": m[f"vs.{best}.ndcg@{k}"], "diff_low": m[f"vs.{best}.ndcg@{k}.ci_low"],
               "diff_high": m[f"vs.{best}.ndcg@{k}.ci_high"]}
        rows.append(row)
        cells = "; ".join(f"{b} {v[0]:.4f} [{v[1]:.3f}, {v[2]:.3f}]" for b, v in base.items())
        echo(f"{method:<14} {row['users']:>5} users  model {row['ndcg']:.4f} [{row['ci_low']:.3f}, "
             f"{row['ci_high']:.3f}]  {cells}  model - {best}: {row['diff']:+.4f} "
             f"[{row['diff_low']:+.4f}, {row['diff_high']:+.4f}]")
    return rows


def gate_noise(config: Config | None = None, *, runs: int = 6, tolerance: float = 0.10,
               methods: tuple[str, ...] = ("time_global", "time_per_user"),
               echo: Callable[[str], None] = print) -> list[dict]:
    """False-failure rate of the regression gate on equivalent retrains (identical data, different seeds).

    Parameters
    ----------
    config : Config, optional
        Data and model (default ``Config()``); fits are single-threaded, seeds ``1..runs``.
    runs : int
        Retrains per protocol; every ordered pair (production, candidate) is gated: ``runs * (runs - 1)`` pairs.
    tolerance : float
        ``gate.max_regression`` of NDCG@k and recall@k (default 0.10).
    methods : tuple of str
        Split protocols.
    echo : callable
        Where the lines go.

    Returns
    -------
    list of dict
        Per protocol: ``method, users, runs, pairs, ndcg_min, ndcg_max``, ``old_rule`` (share of pairs failing
        a > ``tolerance`` relative drop of the mean, NDCG@k or recall@k) and ``paired_rule`` (share failing when
        production is significantly better per user, paired, and the drop exceeds ``tolerance``).
    """
    from recsys_lab.pipeline import Retrain

    cfg = config or Config()
    k = cfg.eval.k
    out = []
    for method in methods:
        job = Retrain(cfg.replace({"split.method": method, "eval.baselines": []}))
        job.ingest()
        job.build_features()
        ds, sp_ = job.dataset, job.split
        users = evaluation.sample_users(sp_.warm_test_users, cfg.eval.max_users, cfg.split.seed)
        uf = ds.user_features_at(sp_.cutoff).matrix if sp_.cutoff else ds.user_features.matrix
        itf = ds.item_features.matrix
        score = evaluation.validation_scorer(sp_.validation, evaluation.sample_users(
            sp_.validation_users, cfg.model.validation_users, cfg.model.seed), exclude=sp_.fit_seen, k=k)
        per_run = []
        for seed in range(1, runs + 1):
            mcfg = dataclasses.replace(cfg.model, seed=seed, num_threads=1)
            fit_uf = ds.user_features_at(sp_.validation_cutoff).matrix if sp_.validation_cutoff else uf
            res = models.fit(sp_.train, uf, itf, mcfg, fit_matrix=sp_.fit, fit_user_features=fit_uf,
                             validate=(lambda m: score(*models.embeddings(m, fit_uf, itf))) if score else None)
            values, _ = evaluation.per_user_metrics(*models.embeddings(res.model, uf, itf), sp_.test, users=users,
                                                    exclude=sp_.train_seen, k=k)
            per_run.append(values)
        old = paired = 0
        pairs = list(itertools.permutations(range(runs), 2))
        for p, c in pairs:
            fail_old = fail_paired = False
            for metric in (f"ndcg@{k}", f"recall@{k}"):
                prod, cand = per_run[p][metric], per_run[c][metric]
                drop = (prod.mean() - cand.mean()) / prod.mean()
                fail_old |= drop > tolerance
                d = paired_difference(cand, prod, n_resamples=cfg.eval.bootstrap, seed=cfg.model.seed)
                fail_paired |= d["ci_high"] < 0 and drop > tolerance
            old += fail_old
            paired += fail_paired
        ndcgs = [float(v[f"ndcg@{k}"].mean()) for v in per_run]
        row = {"method": method, "users": int(len(users)), "runs": runs, "pairs": len(pairs),
               "ndcg_min": min(ndcgs), "ndcg_max": max(ndcgs), "old_rule": old / len(pairs),
               "paired_rule": paired / len(pairs)}
        out.append(row)
        echo(f"{method:<14} {row['users']:>5} users, {runs} seeds: ndcg@{k} {row['ndcg_min']:.4f}-{row['ndcg_max']:.4f}; "
             f"pairs failing the gate: mean-drop rule {row['old_rule']:.0%}, paired rule {row['paired_rule']:.0%} "
             f"(of {len(pairs)})")
    return out
