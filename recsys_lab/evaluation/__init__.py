"""recsys_lab.evaluation.ranking."""
