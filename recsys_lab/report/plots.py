"""Figures for notebooks and reports. The only module that imports matplotlib."""

from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")  # headless outside Jupyter; the inline backend is kept in notebooks
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recsys_lab.evaluation import keys  # noqa: E402

__all__ = ["training_curve", "metrics_comparison", "timeline", "long_tail", "bars", "onboarding_curve",
           "accuracy_vs_novelty", "item_exposure", "group_metric", "embedding_map", "probe_bars", "feature_importance"]


def _table_k(table, k: int | None) -> int:  # noqa: ANN001
    """``k`` when given, else the cut-off of the table's ``ndcg@<k>`` column (:data:`keys.DEFAULT_K` without one)."""
    if k is not None:
        return k
    found = [keys.split_at(c)[1] for c in table.columns if keys.split_at(c)[0] == "ndcg"]
    return next((x for x in found if x is not None), keys.DEFAULT_K)


def training_curve(history: dict[str, list[dict]], *, metric: str = "validation NDCG@10") -> Figure:
    """Validation metric per epoch for each trained model, best epoch marked.

    Parameters
    ----------
    history : dict of str to list of dict
        ``{model_name: [{"epoch": int, "validation": float, "seconds": float}, ...]}`` as in
        ``history.json`` (``Retrain.history``).
    metric : str
        Y-axis label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, rows in history.items():
        if not rows:
            continue
        epochs = [r["epoch"] for r in rows]
        values = [r["validation"] for r in rows]
        (line,) = ax.plot(epochs, values, marker="o", ms=3, label=name)
        finite = [(v, e) for v, e in zip(values, epochs) if v == v]
        if finite:
            best_v, best_e = max(finite)
            ax.scatter([best_e], [best_v], s=80, facecolors="none", edgecolors=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("Training curve (circle: best epoch, used for the refit)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def metrics_comparison(table, *, metrics: tuple[str, ...] | None = None) -> Figure:
    """Grouped bars: each metric for the model and each baseline.

    Parameters
    ----------
    table : pl.DataFrame
        ``recsys_lab.report.tables.metrics_table`` output: a ``metric`` column and one column per model.
    metrics : tuple of str, optional
        Rows to plot (default: all but coverage and AUC, which have other scales).

    Returns
    -------
    matplotlib.figure.Figure
        One group of bars per metric row, one bar per model column.
    """
    rows = table if metrics is None else table.filter(table["metric"].is_in(list(metrics)))
    if metrics is None:
        rows = rows.filter(~rows["metric"].str.starts_with("coverage") & (rows["metric"] != "auc"))
    models = [c for c in rows.columns if c != "metric"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(models), 1)
    for j, m in enumerate(models):
        ax.bar([i + j * width for i in range(rows.height)], rows[m].to_list(), width=width, label=m)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(rows.height)], rows["metric"].to_list())
    ax.set_title("Model vs baselines on the temporal test split")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def timeline(df, *, x: str = "period", y: tuple[str, ...] = ("interactions",), title: str = "Interactions over time"
             ) -> Figure:
    """Line chart of one or more columns over time (e.g. :func:`recsys_lab.report.explore.interactions_over_time`).

    Parameters
    ----------
    df : pl.DataFrame
        One row per period, with the ``x`` column and every ``y`` column.
    x : str
        Column on the horizontal axis (default ``period``).
    y : tuple of str
        Columns drawn as one line each (default ``("interactions",)``).
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One line per column of ``y``, with a legend.
    """
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for col in y:
        ax.plot(df[x].to_list(), df[col].to_list(), marker="o", ms=2, label=col)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def long_tail(popularity, activity) -> Figure:  # noqa: ANN001
    """Item popularity by rank and user activity by rank, both on log-log axes (the long tails).

    Parameters
    ----------
    popularity : pl.DataFrame
        :func:`recsys_lab.report.explore.item_popularity` (``rank, interactions, cumulative_share``).
    activity : pl.DataFrame
        :func:`recsys_lab.report.explore.user_activity` (``interactions``, most active first).

    Returns
    -------
    matplotlib.figure.Figure
        Two log-log panels; the left one marks the rank at which items reach 50 % of the interactions.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.loglog(popularity["rank"].to_list(), popularity["interactions"].to_list())
    top = popularity.filter(popularity["cumulative_share"] <= 0.5).height
    a.axvline(max(top, 1), color="grey", ls="--", lw=1)
    a.set_title(f"Item popularity ({top} items = 50% of interactions)")
    a.set_xlabel("item rank")
    a.set_ylabel("interactions")
    b.loglog(range(1, activity.height + 1), activity["interactions"].to_list())
    b.set_title("User activity")
    b.set_xlabel("user rank")
    for ax in (a, b):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def bars(df, *, x: str, y: str, title: str, top: int = 20) -> Figure:  # noqa: ANN001
    """Horizontal bars of the ``top`` rows (e.g. category shares or the weight distribution).

    Parameters
    ----------
    df : pl.DataFrame
        Rows already sorted; the first ``top`` are drawn, the first one at the top.
    x : str
        Column of bar labels.
    y : str
        Column of bar lengths.
    title : str
        Axes title.
    top : int
        Number of rows drawn (default 20).

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = df.head(top)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * rows.height + 1)))
    ax.barh([str(v) for v in rows[x].to_list()][::-1], rows[y].to_list()[::-1])
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def onboarding_curve(rows, *, k: int | None = None, title: str = "Cold users: taste onboarding") -> Figure:  # noqa: ANN001
    """NDCG@k against the number of onboarding items n, fold-in vs most-popular, and their paired difference.

    Parameters
    ----------
    rows : OnboardingResult, list of dict or DataFrame
        A :class:`recsys_lab.evaluation.cold_start.OnboardingResult` (its ``table()`` and ``k`` are read), or one
        row per n with ``n, n_users, foldin, popularity, diff, ci_low, ci_high`` (as its ``table()``): mean NDCG@k
        of each method, and the mean and 95 % paired bootstrap interval of fold-in minus popularity.
    k : int, optional
        Cut-off, for the axis label (default: the result's ``k``, else 10).

    Returns
    -------
    matplotlib.figure.Figure
        Left: both curves (users per n under each tick). Right: the difference with its interval.
    """
    if hasattr(rows, "per_n"):
        k, rows = rows.k if k is None else k, rows.table()
    k = keys.DEFAULT_K if k is None else k
    if hasattr(rows, "to_dicts"):
        rows = rows.to_dicts()
    n = [r["n"] for r in rows]
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax.plot(n, [r["foldin"] for r in rows], marker="o", label="fold-in")
    ax.plot(n, [r["popularity"] for r in rows], marker="s", label="most-popular")
    ax.set_xticks(n, [f"{r['n']}\n{r['n_users']}" for r in rows], fontsize=8)  # narrow: n = 0 and 1 sit close
    ax.set_xlabel("onboarding items n (users below)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    diff = [r["diff"] for r in rows]
    err = [[r["diff"] - r["ci_low"] for r in rows], [r["ci_high"] - r["diff"] for r in rows]]
    ax_d.errorbar(n, diff, yerr=err, marker="o", capsize=4)
    ax_d.axhline(0.0, color="grey", lw=1)
    ax_d.set_xticks(n)
    ax_d.set_xlabel("onboarding items n")
    ax_d.set_ylabel(f"fold-in - most-popular, NDCG@{k}")
    ax_d.set_title("Paired difference, 95 % bootstrap interval")
    ax_d.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# -- embeddings as a product --------------------------------------------------------------------------------------
def accuracy_vs_novelty(table, *, k: int | None = None) -> Figure:  # noqa: ANN001
    """NDCG@k against novelty@k, one point per model (``report.beyond_table``), marker size by coverage.

    Parameters
    ----------
    table : pl.DataFrame
        :func:`recsys_lab.report.tables.beyond_table` output (``model, ndcg@k, novelty@k, coverage@k`` ...); models whose
        NDCG or novelty is null are left out.
    k : int, optional
        Cut-off of the columns read (default: the one of the table's ``ndcg@k`` column).

    Returns
    -------
    matplotlib.figure.Figure
        One annotated point per model; novelty in bits (mean self-information).
    """
    k = _table_k(table, k)
    ndcg, novelty, coverage = keys.at("ndcg", k), keys.at("novelty", k), keys.at("coverage", k)
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [r for r in table.iter_rows(named=True) if r[ndcg] is not None and r[novelty] is not None]
    for r in rows:
        ax.scatter(r[novelty], r[ndcg], s=20 + 400 * (r[coverage] or 0))
        ax.annotate(r["model"], (r[novelty], r[ndcg]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel(f"{novelty} (bits; mean self-information)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("Accuracy against novelty (marker size: catalog coverage)")
    fig.tight_layout()
    return fig


def item_exposure(table, *, column: str = "genre") -> Figure:  # noqa: ANN001
    """Exposure share of each item group next to its catalogue and interaction shares (``report.item_exposure_table``).

    Parameters
    ----------
    table : pl.DataFrame
        :func:`recsys_lab.report.tables.item_exposure_table` output (``group, exposure, interactions, catalog`` shares).
    column : str
        The item column the groups come from, named in the title (default ``genre``).

    Returns
    -------
    matplotlib.figure.Figure
        Three bars per group: recommended, interactions and catalogue shares.
    """
    fig, ax = plt.subplots(figsize=(9, 4))
    groups = table["group"].to_list()
    x = range(len(groups))
    for j, (name, label) in enumerate((("exposure", "recommended"), ("interactions", "interactions"),
                                       ("catalog", "catalogue"))):
        ax.bar([i + (j - 1) * 0.27 for i in x], table[name].to_list(), width=0.27, label=label)
    ax.set_xticks(list(x), groups, rotation=60, ha="right")
    ax.set_ylabel("share")
    ax.set_title(f"Exposure by {column} (sorted: under-exposed against interactions first)")
    ax.legend()
    fig.tight_layout()
    return fig


def group_metric(table, *, k: int | None = None) -> Figure:  # noqa: ANN001
    """NDCG@k per user group with 95 % intervals, one panel per column, models side by side
    (``report.user_fairness_table``).

    Parameters
    ----------
    table : pl.DataFrame
        :func:`recsys_lab.report.tables.user_fairness_table` output (``column, group, model, ndcg@k, ci_low, ci_high``).
    k : int, optional
        Cut-off of the NDCG column read (default: the one of the table's ``ndcg@k`` column).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per user column (a single ``(none)`` panel when the table is empty), error bars = 95 % interval.
    """
    k = _table_k(table, k)
    ndcg = keys.at("ndcg", k)
    columns = table["column"].unique(maintain_order=True).to_list() or ["(none)"]
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.5), squeeze=False)
    for ax, column in zip(axes[0], columns):
        part = table.filter(table["column"] == column)
        models = part["model"].unique(maintain_order=True).to_list()
        groups = part["group"].unique(maintain_order=True).to_list()
        width = 0.8 / max(len(models), 1)
        for j, m in enumerate(models):
            rows = {r["group"]: r for r in part.filter(part["model"] == m).iter_rows(named=True)}
            xs = [g + j * width for g in range(len(groups))]
            mean = [rows[g][ndcg] if g in rows else float("nan") for g in groups]
            err = [[(rows[g][ndcg] - rows[g]["ci_low"]) if g in rows else 0 for g in groups],
                   [(rows[g]["ci_high"] - rows[g][ndcg]) if g in rows else 0 for g in groups]]
            ax.errorbar(xs, mean, yerr=err, fmt="o", label=m, capsize=3)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=30, ha="right")
        ax.set_title(f"NDCG@{k} by {column} (95 % intervals)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def embedding_map(xy, labels, *, highlight=None, title: str = "Item embeddings (PCA)") -> Figure:  # noqa: ANN001
    """2-D projection of item embeddings coloured by category.

    Parameters
    ----------
    xy : ndarray of shape (n_items, 2)
    labels : sequence of length n_items
        Category per item (None: grey).
    highlight : sequence of int, optional
        Row indices marked with black rings (e.g. an item and its neighbours).

    Returns
    -------
    matplotlib.figure.Figure
        The 12 most frequent categories in colour, the others grey.
    """
    import numpy as np

    xy = np.asarray(xy)
    labels = np.array(["(none)" if v is None else str(v) for v in labels], dtype=object)
    fig, ax = plt.subplots(figsize=(8, 6))
    names, counts = np.unique(labels, return_counts=True)
    for name in names[np.argsort(-counts)][:12]:
        m = labels == name
        ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.6, label=name)
    rest = ~np.isin(labels, names[np.argsort(-counts)][:12])
    if rest.any():
        ax.scatter(xy[rest, 0], xy[rest, 1], s=6, alpha=0.4, c="lightgrey", label="other")
    if highlight is not None and len(highlight):
        h = np.asarray(highlight)
        ax.scatter(xy[h, 0], xy[h, 1], s=60, facecolors="none", edgecolors="black", linewidths=1.2)
    ax.legend(markerscale=3, fontsize=7, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def probe_bars(table) -> Figure:  # noqa: ANN001
    """Probe AUCs against their reference (``report.embedding_table`` rows whose figure starts with 'probe').

    Parameters
    ----------
    table : pl.DataFrame
        :func:`recsys_lab.report.tables.embedding_table` output (``figure, value, reference``).

    Returns
    -------
    matplotlib.figure.Figure
        One bar per probe (cross-validated AUC), its majority-baseline AUC as a tick where there is one; x axis
        from 0.4 to 1.
    """
    part = table.filter(table["figure"].str.starts_with("probe"))
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(part.height, 1) + 1))
    names = part["figure"].to_list()
    ax.barh(names, part["value"].to_list(), label="probe")
    refs = [(v, n) for v, n in zip(part["reference"].to_list(), names) if v is not None and v == v]
    if refs:  # a probe without reference (too few items per class) gets no tick; all-NaN points break the legend
        ax.scatter([v for v, _ in refs], [n for _, n in refs], color="black", marker="|", s=200,
                   label="majority baseline")
    ax.axvline(0.5, color="grey", lw=0.5)
    ax.set_xlim(0.4, 1.0)
    ax.set_xlabel("cross-validated AUC")
    ax.set_title("Linear probes on frozen embeddings")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def feature_importance(importance: dict[str, float], *, top: int = 20,
                       title: str = "Ranker: feature importance (total gain)") -> Figure:
    """Horizontal bars of the learned ranker's feature importance, largest at the top, as shares of the total.

    Parameters
    ----------
    importance : dict of str to float
        Feature -> total gain (``Ranker.importance``; any order).
    top : int
        Features drawn (default 20); the rest are summed into one ``other (n)`` bar.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One bar per feature drawn; empty axes with a note when ``importance`` is empty.
    """
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    total = sum(v for _, v in ranked) or 1.0
    shown = ranked[:top]
    if len(ranked) > top:
        shown.append((f"other ({len(ranked) - top})", sum(v for _, v in ranked[top:])))
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * len(shown) + 1)))
    if not shown:
        ax.text(0.5, 0.5, "no ranker was fitted", ha="center", va="center", transform=ax.transAxes)
    ax.barh([name for name, _ in shown][::-1], [v / total for _, v in shown][::-1])
    ax.set_xlabel("share of total gain")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
