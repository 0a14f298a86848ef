"""The retrain: the one code path behind the notebook and the scheduled run.

:class:`Retrain` (:mod:`recsys_lab.pipeline.retrain`) composes the steps, each a call into the module that owns its
concern; :class:`RetrainResults` and :class:`Production` (:mod:`recsys_lab.pipeline.results`) hold what they
produce and what they are compared with. Notebooks write ``from recsys_lab import pipeline`` and
``pipeline.Retrain(...)``.
"""

from recsys_lab.pipeline.results import Production, RetrainResults
from recsys_lab.pipeline.retrain import BASELINES, Retrain, run

__all__ = ["Retrain", "RetrainResults", "Production", "run", "BASELINES"]
