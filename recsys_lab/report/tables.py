"""Tables of a run's metrics and data for notebooks, the report and the CLI (Polars frames)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys_lab.evaluation import keys

if TYPE_CHECKING:
    from recsys_lab.data.guardrails import ValidationReport
    from recsys_lab.evaluation.gate import GateResult

__all__ = ["metrics_table", "evaluation_table", "drift_table", "split_table", "timings_table", "drift_view",
           "snapshot_table", "guardrail_table", "gate_view", "public_text",
           "beyond_table", "user_fairness_table", "item_exposure_table", "embedding_table", "persona_table",
           "recall_ceiling_table"]

_ABSOLUTE_PATH = re.compile(r"(?<![\w./~])/(?!/)(?:[^\s/'\"]+/)+([^\s/'\"]+)")



def metrics_table(metrics: dict[str, float]) -> pl.DataFrame:
    """Model vs baselines, one row per metric.

    Parameters
    ----------
    metrics : dict
        Flat metrics as in ``metrics.json``: plain names for the model, ``baseline.<name>.<metric>`` for
        baselines.

    Returns
    -------
    pl.DataFrame
        Columns ``metric, model`` and one per baseline present (``lightfm_cf``, ``lightfm_static`` when
        time-windowed features are on, ``popularity``), Float64; rows in metrics.json order.
    """
    names = [k for k in metrics if "." not in k and "@" in k or k in ("mrr", "auc")]
    cols = {"metric": names, "model": [metrics[n] for n in names]}
    for b in keys.baselines(metrics):
        cols[b] = [metrics.get(keys.model_key(b, n)) for n in names]
    return pl.DataFrame(cols, schema={c: pl.Utf8 if c == "metric" else pl.Float64 for c in cols})


def evaluation_table(metrics: dict[str, float], k: int | None = None) -> pl.DataFrame:
    """Model and baselines with 95 % intervals and the paired difference to the model, one row per model.

    Parameters
    ----------
    metrics : dict
        Flat metrics as in ``metrics.json`` (``ndcg@k``, ``ndcg@k.ci_low``, ``baseline.<b>.ndcg@k``,
        ``vs.<b>.ndcg@k`` with ``.ci_low`` / ``.ci_high``, ``eval.n_users``).
    k : int, optional
        Cut-off of the keys read (default: the metrics' own ``eval.k``).

    Returns
    -------
    pl.DataFrame
        ``model, users, ndcg@k, ndcg_ci_low, ndcg_ci_high, recall@k, recall_ci_low, recall_ci_high,
        model_minus_this, diff_ci_low, diff_ci_high, verdict`` where the difference is the model's NDCG@k minus
        this row's, paired over the same users, and ``verdict`` says whether it is significant.
    """
    k = keys.k_of(metrics) if k is None else k
    ndcg, recall = keys.at("ndcg", k), keys.at("recall", k)
    rows = []
    for name in [keys.MODEL] + keys.baselines(metrics):
        vs = keys.vs(name, ndcg)
        delta, lo, hi = metrics.get(vs), *(metrics.get(b) for b in keys.ci(vs))
        verdict = ("" if delta is None or lo is None else
                   "model better" if lo > 0 else "model worse" if hi < 0 else "no significant difference")
        row = {"model": name, "users": metrics.get("eval.n_users")}
        for metric, short in ((ndcg, "ndcg"), (recall, "recall")):
            key = keys.model_key(name, metric)
            low, high = keys.ci(key)
            row.update({metric: metrics.get(key), f"{short}_ci_low": metrics.get(low),
                        f"{short}_ci_high": metrics.get(high)})
        rows.append({**row, "model_minus_this": delta, "diff_ci_low": lo, "diff_ci_high": hi, "verdict": verdict})
    schema = {c: pl.Float64 for c in rows[0]}
    schema.update({"model": pl.Utf8, "verdict": pl.Utf8, "users": pl.Int64})
    return pl.DataFrame(rows, schema=schema)


def drift_table(metrics: dict[str, float]) -> pl.DataFrame:
    """The ``drift.*`` metrics with their PSI band (< 0.1 stable, 0.1-0.25 moderate, > 0.25 major).

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run; only keys starting with ``drift.`` are read.

    Returns
    -------
    pl.DataFrame
        ``measure, value, band`` (band empty for shares and churn); empty when there was no reference.
    """
    from recsys_lab.data.drift import psi_band

    rows = [{"measure": k[len("drift."):], "value": float(v),
             "band": psi_band(v) if k.startswith("drift.psi.") else ""}
            for k, v in metrics.items() if k.startswith("drift.")]
    return pl.DataFrame(rows, schema={"measure": pl.Utf8, "value": pl.Float64, "band": pl.Utf8})


def split_table(stats: dict) -> pl.DataFrame:
    """Split statistics (``Split.stats``) as a two-column frame.

    Parameters
    ----------
    stats : dict
        ``Split.stats`` (statistic name to value).

    Returns
    -------
    pl.DataFrame
        ``statistic, value``, both Utf8 (fractions with 3 decimals, counts with thousands separators, the rest
        with ``str``).
    """
    return pl.DataFrame({"statistic": list(stats),
                         "value": [f"{v:.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int)
                                   and not isinstance(v, bool) else str(v) for v in stats.values()]})


def public_text(text: str) -> str:
    """``text`` with every absolute path of this machine cut to its last part (``/a/data/u.data`` -> ``u.data``).

    Parameters
    ----------
    text : str
        E.g. a snapshot's ``source``.

    Returns
    -------
    str
        The same text; a URL's ``//`` is left alone.
    """
    return _ABSOLUTE_PATH.sub(r"\1", text)


def snapshot_table(info: dict[str, Any]) -> pl.DataFrame:
    """A snapshot's metadata row (``Snapshot.info()``) as a two-column frame a reviewer reads.

    Parameters
    ----------
    info : dict
        ``id, hash, source, created_at`` and the row counts.

    Returns
    -------
    pl.DataFrame
        ``field, value`` (Utf8): times as ``YYYY-MM-DD HH:MM:SS UTC``, counts with thousands separators, the
        source without this machine's folders (:func:`public_text`).
    """
    def shown(value: Any) -> str:
        if isinstance(value, datetime):
            from datetime import timezone

            utc = value.astimezone(timezone.utc) if value.tzinfo else value
            return utc.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return public_text(str(value)) if value is not None else ""

    return pl.DataFrame({"field": [k.replace("_", " ") for k in info], "value": [shown(v) for v in info.values()]},
                        schema={"field": pl.Utf8, "value": pl.Utf8})


def guardrail_table(report: "ValidationReport") -> pl.DataFrame:
    """The data guardrails, one row per check, with its result.

    ``ValidationReport.table()`` shows each check's configured ``severity`` (``fail`` or ``warn``: what a finding
    would do), which reads as ``fail`` on every row of a clean snapshot; this table says what happened.

    Parameters
    ----------
    report : ValidationReport
        :func:`recsys_lab.data.guardrails.validate`'s result.

    Returns
    -------
    pl.DataFrame
        ``check, table, rows_found`` (Int64), ``result`` (``passed`` when nothing was found, ``failed`` for a
        finding of a fail-level check, ``warning`` for a warn-level one) and ``description``.
    """
    rows = [{"check": r["check"], "table": r["table"], "rows_found": int(r["count"] or 0),
             "result": "passed" if not r["count"] else "failed" if r["severity"] == "fail" else "warning",
             "description": r["description"]} for r in report.results]
    return pl.DataFrame(rows, schema={"check": pl.Utf8, "table": pl.Utf8, "rows_found": pl.Int64, "result": pl.Utf8,
                                      "description": pl.Utf8})


def gate_view(gate: "GateResult"):  # noqa: ANN201 - a frame or an IPython Markdown
    """The gate's checks (``GateResult.table()``), or a sentence when no check is configured.

    Parameters
    ----------
    gate : GateResult
        The run's gate.

    Returns
    -------
    pl.DataFrame or IPython.display.Markdown
        ``metric, kind, value, bound, production, passed, message`` with every check, else a Markdown sentence.
    """
    table = gate.table()
    if table.height:
        return table
    from IPython.display import Markdown

    return Markdown("No gate check is configured (`gate.min`, `gate.max`, `gate.max_regression`, "
                    "`gate.not_worse_than` are empty): the gate passes.")


def timings_table(timings: dict[str, float]) -> pl.DataFrame:
    """Phase timings and the other figures of ``timings`` as a frame, each with its unit.

    Parameters
    ----------
    timings : dict of str to float
        Phase name to duration in seconds; also rates (``*_per_s``, per second), the peak resident memory after
        each phase (``peak_rss_mib.*``, MiB) and flags (``index.exact``).

    Returns
    -------
    pl.DataFrame
        ``phase`` (Utf8), ``value`` (Float64), ``unit`` (Utf8: ``s``, ``1/s``, ``MiB`` or ``flag``), in the
        order of ``timings``.
    """
    def unit(key: str) -> str:
        return ("1/s" if key.endswith("_per_s") else "MiB" if key.startswith("peak_rss_mib.")
                else "flag" if key == "index.exact" else "s")

    return pl.DataFrame({"phase": list(timings), "value": [float(v) for v in timings.values()],
                         "unit": [unit(k) for k in timings]})




def drift_view(metrics: dict[str, float]):  # noqa: ANN201 - a frame or an IPython Markdown
    """:func:`drift_table`, or a sentence when there was nothing to compare with (the first run).

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run.

    Returns
    -------
    pl.DataFrame or IPython.display.Markdown
        The :func:`drift_table` when it has rows, else a Markdown sentence.
    """
    table = drift_table(metrics)
    if table.height:
        return table
    from IPython.display import Markdown

    return Markdown("No production run to compare with: drift is measured against production from the first "
                    "promoted run on.")




# -- embeddings as a product: beyond accuracy, fairness, embedding quality ---------------------------------------
BEYOND = ("novelty", "ild", "ild.category", "arp", "aplt", "gini", "coverage")
"""Beyond-accuracy figures (``<name>@k``; see :mod:`recsys_lab.evaluation.beyond`)."""


def beyond_table(metrics: dict[str, float], k: int | None = None) -> pl.DataFrame:
    """Accuracy next to beyond-accuracy, one row per model: ``model, ndcg@k, novelty@k, ild@k, ild.category@k,
    arp@k, aplt@k, gini@k, coverage@k, gender_gap`` (missing figures are null).

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run (model keys unprefixed, baselines under ``baseline.<name>.``).
    k : int, optional
        Cut-off of the columns read (default: the metrics' own ``eval.k``).

    Returns
    -------
    pl.DataFrame
        ``model`` (Utf8) then one Float64 column per figure; one row for the model, then one per baseline.
    """
    k = keys.k_of(metrics) if k is None else k
    rows = []
    for name in [keys.MODEL] + keys.baselines(metrics):
        row = {"model": name, keys.at("ndcg", k): metrics.get(keys.model_key(name, keys.at("ndcg", k)))}
        row.update({keys.at(b, k): metrics.get(keys.model_key(name, keys.at(b, k))) for b in BEYOND})
        rows.append(row)
    return pl.DataFrame(rows, schema={c: (pl.Utf8 if c == "model" else pl.Float64) for c in rows[0]})


def user_fairness_table(metrics: dict[str, float], k: int | None = None) -> pl.DataFrame:
    """NDCG@k per user group with its 95 % interval, for every model: ``column, group, model, users, ndcg@k,
    ci_low, ci_high, gap`` (``gap``: the largest difference between the column's group means).

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run (``fairness.user.<column>.ndcg@k.<group>`` keys and their ``.n_users``).
    k : int, optional
        Cut-off of the NDCG keys read (default: the metrics' own ``eval.k``).

    Returns
    -------
    pl.DataFrame
        One row per (model, column, group); ``users`` Int64, the figures Float64 (null when missing). Empty when
        the metrics hold no user-fairness keys.
    """
    k = keys.k_of(metrics) if k is None else k
    ndcg = keys.at("ndcg", k)
    rows = []
    for name in [keys.MODEL] + keys.baselines(metrics):
        head = keys.model_key(name, "fairness.user.")
        for key, value in metrics.items():
            if not key.startswith(head) or not key.endswith(".n_users"):
                continue
            column, rest = key[len(head):].split(".", 1)
            group = rest[len(ndcg) + 1:-len(".n_users")]
            base = f"{head}{column}.{ndcg}.{group}"
            low, high = keys.ci(base)
            rows.append({"column": column, "group": group, "model": name, "users": int(value),
                         ndcg: metrics.get(base), "ci_low": metrics.get(low), "ci_high": metrics.get(high),
                         "gap": metrics.get(f"{head}{column}.{ndcg}.gap")})
    schema = {"column": pl.Utf8, "group": pl.Utf8, "model": pl.Utf8, "users": pl.Int64, ndcg: pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "gap": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def item_exposure_table(metrics: dict[str, float], column: str = "genre") -> pl.DataFrame:
    """The model's exposure share of each item group against its catalogue and interaction shares:
    ``group, exposure, catalog, interactions, ratio`` sorted by ratio (under-exposed first).

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run (``fairness.item.<column>.<group>.<share>`` keys).
    column : str
        Item column the groups come from (default ``genre``).

    Returns
    -------
    pl.DataFrame
        ``group`` (Utf8) and the shares (Float64, fractions in [0, 1]; ``ratio`` = exposure / interactions).
    """
    head = f"fairness.item.{column}."
    rows: dict[str, dict] = {}
    for key, value in metrics.items():
        if key.startswith(head) and key.count(".") >= 4:
            group, what = key[len(head):].rsplit(".", 1)
            rows.setdefault(group, {"group": group})[what] = value
    schema = {"group": pl.Utf8, "exposure": pl.Float64, "catalog": pl.Float64, "interactions": pl.Float64,
              "ratio": pl.Float64}
    return pl.DataFrame(list(rows.values()), schema=schema).sort("ratio")


def embedding_table(metrics: dict[str, float], k: int | None = None) -> pl.DataFrame:
    """Intrinsic and extrinsic quality of the embeddings: ``figure, value, reference`` (chance, majority baseline
    or the factor baselines), one row per figure present.

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run.
    k : int, optional
        Cut-off of the keys read (default: the metrics' own ``eval.k``).

    Returns
    -------
    pl.DataFrame
        ``figure`` (Utf8), ``value``, ``reference`` (Float64, null without one) and ``reference_is`` (Utf8: chance,
        majority, most-popular or empty).
    """
    k = keys.k_of(metrics) if k is None else k
    coherence, chance = keys.at("embedding.item_coherence", k), keys.at("embedding.item_coherence", k) + ".chance"
    rows = []

    def add(figure: str, key: str, ref_key: str | None = None, ref: str = "") -> None:
        if key in metrics:
            rows.append({"figure": figure, "value": metrics[key],
                         "reference": metrics.get(ref_key) if ref_key else None, "reference_is": ref})

    add(f"item coherence@{k} (served neighbours)", coherence, chance, "chance")
    add(f"item coherence@{k} (cosine)", keys.at("embedding.item_coherence.cosine", k), chance, "chance")
    for key in sorted(metrics):
        if key.startswith("baseline.") and ".embedding.item_coherence" in key:
            add(f"item coherence@{k} (cosine), {key.split('.')[1]}", key, chance, "chance")
    for key in sorted(metrics):
        if key.startswith("probe.") and key.endswith(".auc"):
            add(f"probe {key[6:-4]} AUC", key, key + ".baseline", "majority")
        elif key.startswith("baseline.") and ".probe." in key and key.endswith(".auc"):
            add(f"probe {key.split('.probe.')[1][:-4]} AUC, {key.split('.')[1]}", key, None, "")
    add(f"stability@{k} (item neighbours vs production)", keys.at("embedding.stability", k))
    add(f"churn@{k} (top-k vs production)", keys.at("recs.churn", k))
    horizon = keys.at("horizon.ndcg", k)
    add(f"future window ndcg@{k}", horizon, keys.model_key("popularity", horizon), "most-popular")
    return pl.DataFrame(rows, schema={"figure": pl.Utf8, "value": pl.Float64, "reference": pl.Float64,
                                      "reference_is": pl.Utf8})


def persona_table(mine: dict[str, dict], theirs: dict[str, dict] | None = None) -> pl.DataFrame:
    """Every persona's top-k next to another run's (e.g. production) with moves (new / dropped / up N / down N / =).

    Parameters
    ----------
    mine, theirs : dict
        Lists as :func:`recsys_lab.evaluation.personas.persona_lists` returns them (``personas.json``); ``theirs`` None or
        empty: this run's lists alone (every item ``new``).

    Returns
    -------
    pl.DataFrame
        ``persona, rank, rank_vs, move, item_id, title``.
    """
    from recsys_lab.evaluation.personas import moves

    rows = []
    for name, entry in mine.items():
        other = (theirs or {}).get(name, {}).get("top", [])
        rows += [{"persona": name, **r, "item_id": str(r["item_id"])} for r in moves(entry["top"], other)]
    schema = {"persona": pl.Utf8, "rank": pl.Int64, "rank_vs": pl.Int64, "move": pl.Utf8, "item_id": pl.Utf8,
              "title": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def recall_ceiling_table(metrics: dict[str, float]) -> pl.DataFrame:
    """The ranking stage's candidate recall ceiling: the share of test positives inside the candidate set, per
    generator (its top-N) and in total (no second stage can rank more of them into its lists).

    Parameters
    ----------
    metrics : dict of str to float
        ``metrics.json`` of a run (``rank.recall_ceiling[.<generator>]``, ``rank.n.<generator>``).

    Returns
    -------
    pl.DataFrame
        ``generator`` (Utf8), ``n`` (Int64, null on the ``total`` row), ``recall_ceiling`` (Float64); one row per
        generator, then ``total``; empty when the stage did not run.
    """
    rows = [{"generator": key.removeprefix("rank.recall_ceiling."), "recall_ceiling": value}
            for key, value in metrics.items() if key.startswith("rank.recall_ceiling.")]
    for row in rows:
        n = metrics.get(f"rank.n.{row['generator']}")
        row["n"] = int(n) if isinstance(n, (int, float)) else None
    if "rank.recall_ceiling" in metrics:
        rows.append({"generator": "total", "n": None, "recall_ceiling": metrics["rank.recall_ceiling"]})
    return pl.DataFrame(rows, schema={"generator": pl.Utf8, "n": pl.Int64, "recall_ceiling": pl.Float64})
