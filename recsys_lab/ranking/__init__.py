"""The ranking stage (issue 21): a second stage over the first stage's models.

- :mod:`~recsys_lab.ranking.candidates`: each generator's top-N per user, their union, the recall ceiling, and the
  generators as of the validation cut-off (what the second stage learns from).
- :mod:`~recsys_lab.ranking.features`: (user, candidate) features as of a cut-off (no leakage across the split).
- :mod:`~recsys_lab.ranking.blend`: per-user normalised score blend, weights chosen on the validation slice.
- :mod:`~recsys_lab.ranking.ranker`: LightGBM lambdarank (the only importer of ``lightgbm``).
- :mod:`~recsys_lab.ranking.stage`: the stage end to end, evaluated like a model (``blend.*``, ``ranker.*``).
"""

__all__: list[str] = []
