"""Figures for notebooks and reports. The only module that imports matplotlib."""

from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")  # headless outside Jupyter; the inline backend is kept in notebooks
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["training_curve", "metrics_comparison", "timeline", "long_tail", "bars", "onboarding_curve"]


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
        ``recsys_lab.report.metrics_table`` output: a ``metric`` column and one column per model.
    metrics : tuple of str, optional
        Rows to plot (default: all but coverage and AUC, which have other scales).
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
    """Line chart of one or more columns over time (e.g. :func:`recsys_lab.explore.interactions_over_time`)."""
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
        :func:`recsys_lab.explore.item_popularity` (``rank, interactions, cumulative_share``).
    activity : pl.DataFrame
        :func:`recsys_lab.explore.user_activity` (``interactions``, most active first).
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
    """Horizontal bars of the ``top`` rows (e.g. category shares or the weight distribution)."""
    rows = df.head(top)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * rows.height + 1)))
    ax.barh([str(v) for v in rows[x].to_list()][::-1], rows[y].to_list()[::-1])
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def onboarding_curve(rows, *, k: int = 10, title: str = "Cold users: taste onboarding") -> Figure:  # noqa: ANN001
    """NDCG@k against the number of onboarding items n, fold-in vs most-popular, and their paired difference.

    Parameters
    ----------
    rows : list of dict or DataFrame
        One row per n with ``n, n_users, foldin, popularity, diff, lo, hi`` (as
        ``recsys_lab.foldin.OnboardingResult.table()``): mean NDCG@k of each method, and the mean and 95 %
        paired bootstrap interval of fold-in minus popularity.
    k : int
        Cut-off, for the axis label.

    Returns
    -------
    matplotlib.figure.Figure
        Left: both curves (users per n under the x ticks). Right: the difference with its interval.
    """
    if hasattr(rows, "to_dicts"):
        rows = rows.to_dicts()
    n = [r["n"] for r in rows]
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax.plot(n, [r["foldin"] for r in rows], marker="o", label="fold-in")
    ax.plot(n, [r["popularity"] for r in rows], marker="s", label="most-popular")
    ax.set_xticks(n, [f"{r['n']}\n({r['n_users']} users)" for r in rows], fontsize=8)
    ax.set_xlabel("onboarding items n")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    diff = [r["diff"] for r in rows]
    err = [[r["diff"] - r["lo"] for r in rows], [r["hi"] - r["diff"] for r in rows]]
    ax_d.errorbar(n, diff, yerr=err, marker="o", capsize=4)
    ax_d.axhline(0.0, color="grey", lw=1)
    ax_d.set_xticks(n)
    ax_d.set_xlabel("onboarding items n")
    ax_d.set_ylabel(f"fold-in - most-popular, NDCG@{k}")
    ax_d.set_title("Paired difference, 95 % bootstrap interval")
    ax_d.grid(alpha=0.3)
    fig.tight_layout()
    return fig
