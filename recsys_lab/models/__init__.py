"""recsys_lab.models: what is fitted.

``lightfm`` (the LightFM hybrid: fit with early stopping, folded embeddings, save/load without pickle; the only
LightFM importer) · ``baselines`` (EASE, implicit ALS) · ``foldin`` (user vectors from items with the item side
frozen: the algorithm only) · ``candidates`` (every candidate model fit on one split).
"""
