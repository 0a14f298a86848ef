"""recsys_lab.retrieval."""
