"""What a retrain has produced (:class:`RetrainResults`) and production's evidence it is compared with
(:class:`Production`, loaded once per retrain by :class:`Productions`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_lab.data.guardrails import ValidationReport
from recsys_lab.data.warehouse import Snapshot, open_snapshot
from recsys_lab.errors import DataError, RunError
from recsys_lab.evaluation import keys
from recsys_lab.evaluation.champion import ChampionResult
from recsys_lab.evaluation.cold_start import ColdStartResult, OnboardingResult
from recsys_lab.evaluation.embedding_report import EmbeddingReport
from recsys_lab.evaluation.gate import NO_PRODUCTION, GateResult
from recsys_lab.evaluation.ranking import EvaluationResult, per_user_table
from recsys_lab.features import Dataset
from recsys_lab.models import baselines
from recsys_lab.models import lightfm as models
from recsys_lab.ranking.stage import RankingResult
from recsys_lab.retrieval import ann
from recsys_lab.split import Split
from recsys_lab.store.artifacts import SavedRun
from recsys_lab.store.folder import RunFolder

__all__ = ["Production", "Productions", "RetrainResults", "ProductionRef"]

log = logging.getLogger(__name__)

ProductionRef = "Production | str | Path | None"
"""What the steps accept as production: its loaded evidence, its run folder, or None (no production run)."""


class Production(SavedRun):
    """Production's evidence for drift and the gate: a saved run whose every artifact and metrics are readable
    (:meth:`recsys_lab.store.artifacts.SavedRun.verify`).

    Parameters
    ----------
    run_dir : str or Path
        The production run folder.

    Raises
    ------
    RunError
        A file is missing or unreadable; the message names it (the gate then fails closed).
    """

    def __init__(self, run_dir: str | Path) -> None:
        try:
            super().__init__(run_dir)
            self.verify()
        except RunError as exc:
            raise RunError(f"production run {RunFolder(run_dir).run_id}: {exc}") from exc
        self.run_dir = self.path

    def snapshot(self) -> Snapshot | None:
        """The warehouse snapshot production was trained on (drift reference), or None when it is gone.

        Returns
        -------
        Snapshot or None
            None also when the manifest is unreadable or names no snapshot (a warning when it is gone).
        """
        try:
            snap, warehouse = (self.manifest.get("data") or {}).get("snapshot"), (self.config.get("data") or {}).get("warehouse")
        except RunError:
            return None
        if not snap or not warehouse:
            return None
        try:
            return open_snapshot(snap, warehouse)
        except (DataError, OSError):
            log.warning("production's snapshot %s is gone from %s: no drift reference", snap, warehouse)
            return None


@dataclass
class RetrainResults:
    """What a retrain has produced so far: each step's result object, and the views the notebook, the report and
    ``metrics.json`` read from them. :class:`Retrain` fills it step by step.

    Attributes
    ----------
    snapshot, validation, dataset, split
        :meth:`Retrain.ingest` and :meth:`Retrain.build_features`.
    fits, baseline_fits, vectors
        :meth:`Retrain.fit`: LightFM fits, EASE/ALS fits, every model's ``(user_vecs, item_vecs)``.
    index, recall
        :meth:`Retrain.build_index`.
    evaluation, cold_start, embeddings, drift, champion, gate, personas, production_personas
        The evaluation steps' results.
    ranking : RankingResult or None
        :meth:`Retrain.rank` (``rank.enabled``): the ``blend.*``, ``ranker.*`` and ``rank.*`` keys.
    warnings : list of str
        Evaluation warnings (``data.json``, CLI summary, report).
    """

    snapshot: Snapshot | None = None
    validation: ValidationReport | None = None
    dataset: Dataset | None = None
    split: Split | None = None
    fits: dict[str, models.FitResult] = field(default_factory=dict)
    baseline_fits: dict[str, baselines.BaselineFit] = field(default_factory=dict)
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    index: ann.MipsIndex | None = None
    recall: dict[str, float] = field(default_factory=dict)
    evaluation: EvaluationResult | None = None
    ranking: RankingResult | None = None
    cold_start: ColdStartResult | None = None
    embeddings: EmbeddingReport | None = None
    drift: dict[str, float] = field(default_factory=dict)
    champion: ChampionResult | None = None
    gate: GateResult | None = None
    personas: dict[str, dict] = field(default_factory=dict)
    production_personas: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def _warn(self, *messages: str) -> None:
        """Evaluation warnings: logged and kept in :attr:`warnings` (``data.json``, CLI summary, report)."""
        for message in messages:
            self.warnings.append(message)
            log.warning("%s", message)

    @property
    def metrics(self) -> dict[str, float]:
        """``metrics.json`` so far: the steps' figures in step order (index, evaluation, cold start, ...)."""
        return keys.flatten([self.recall, self.evaluation, self.ranking, self.cold_start, self.embeddings, self.drift,
                             self.champion])

    @property
    def eval_users(self) -> np.ndarray | None:
        """The evaluated users (internal indices), None before :meth:`Retrain.evaluate`."""
        return None if self.evaluation is None else self.evaluation.users

    @property
    def per_user(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-user metrics of the model, each baseline and, after :meth:`Retrain.check_gate`, production."""
        out = {} if self.evaluation is None else dict(self.evaluation.per_user)
        return out if self.champion is None else {**out, "production": self.champion.per_user}

    @property
    def onboarding(self) -> OnboardingResult | None:
        """Cold users per onboarding size (``cold_start.onboarding``), for the report's plot."""
        return None if self.cold_start is None else self.cold_start.onboarding

    @property
    def embedding_report(self) -> dict[str, Any]:
        """Details of the embeddings step for the report (``embeddings.details``: notes, neighbours, ...)."""
        return {} if self.embeddings is None else self.embeddings.details

    @property
    def history(self) -> dict[str, list[dict]]:
        """Per-epoch history of each fitted model: ``{name: [{"epoch", "seconds", "validation"}, ...]}``."""
        return {name: res.history for name, res in self.fits.items()}

    def per_user_table(self) -> pl.DataFrame | None:
        """Per-user metrics of every model (:func:`recsys_lab.evaluation.ranking.per_user_table`).

        Returns
        -------
        pl.DataFrame or None
            ``model, user_id, <metric>...`` (external user ids); None before the evaluation.
        """
        if not self.per_user:
            return None
        return per_user_table(self.per_user, self.dataset.users.ids[self.eval_users])

    def documents(self) -> dict[str, Any]:
        """The run folder's JSON files this retrain has results for, by :class:`RunFolder` attribute name.

        Returns
        -------
        dict of str to object
            ``history``, ``metrics``, ``data`` and, when decided or made, ``gate`` and ``personas``.
        """
        out = {"history": self.history, "metrics": self.metrics, "data": self.data_info}
        if self.gate is not None:
            out["gate"] = self.gate.to_dict()
        if self.personas:
            out["personas"] = self.personas
        return out

    @property
    def data_info(self) -> dict:
        """The data this run saw: snapshot id, content hash, source, guardrail counts, split statistics."""
        snap = self.snapshot
        out = {"snapshot": snap.id, "hash": snap.hash, "source": snap.info()["source"]} if snap else {}
        if self.validation is not None:
            out["validation"] = self.validation.to_dict()
        if self.split is not None:
            out["split"] = self.split.stats
        return {**out, "warnings": list(self.warnings)}


class Productions:
    """Production's evidence loaded once per retrain (drift, stability, personas and the gate all read it)."""

    def __init__(self) -> None:
        self._cache: dict[Path, Production] = {}

    def get(self, production: ProductionRef) -> tuple[Production | None, str]:
        """Production's evidence, loaded on first use.

        Parameters
        ----------
        production : Production, path of the production run folder, or None

        Returns
        -------
        run : Production or None
        why : str
            ``""``, or why there is no evidence: :data:`NO_PRODUCTION` for None, the RunError's message when
            unreadable (not cached: each step reports it).
        """
        if production is None or isinstance(production, Production):
            return production, NO_PRODUCTION if production is None else ""
        key = Path(production).resolve()
        try:
            if key not in self._cache:
                self._cache[key] = Production(key)
        except RunError as exc:
            return None, str(exc)
        return self._cache[key], ""

    def snapshot(self, reference: "Snapshot | ProductionRef") -> Snapshot | None:
        """The drift reference: ``reference`` itself when a snapshot, else production's snapshot.

        Parameters
        ----------
        reference : Snapshot, Production, path of the production run folder, or None

        Returns
        -------
        Snapshot or None
            None without production, or when its folder or snapshot is unreadable (a warning says why).
        """
        if isinstance(reference, Snapshot):
            return reference
        prod, error = self.get(reference)
        if reference is not None and error:
            log.warning("no drift reference: %s", error)
        return None if prod is None else prod.snapshot()
