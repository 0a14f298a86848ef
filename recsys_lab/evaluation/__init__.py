"""recsys_lab.evaluation: arrays in, numbers out (it imports neither ``store``, ``runs`` nor ``serving``).

``keys`` (the grammar of ``metrics.json``: build and parse keys, ``@k``, model names in report order) · ``ranking``
(per-user ranking metrics, every model on the same users) · ``intervals`` (bootstrap intervals, paired
differences) · ``beyond`` (novelty, diversity, popularity bias) · ``fairness`` (exposure by item group, NDCG by user
group) · ``embedding_quality`` (coherence, stability, probes) · ``embedding_report`` (the retrain's embeddings step)
· ``cold_start`` (onboarding curve, fold-in recovery) · ``histories`` (users' positives in time order) ·
``champion`` (production re-scored on the candidate's split) · ``gate`` (floors, champion/challenger, fail closed) ·
``personas`` (persona files and lists, the one rank-move rule).
"""
