"""recsys_lab.data: the data family, one job per module.

``tables`` (the canonical tables) · ``sources`` (which source, ``load``) · ``movielens`` (the MovieLens 100k
preset, once) · ``files`` (any CSV/Parquet log) · ``weights`` (the weight transform and the positive rule, once) ·
``guardrails`` (checks before a snapshot) · ``drift`` (PSI against production) · ``warehouse`` (snapshots) ·
``synthetic`` (generated logs).
"""
