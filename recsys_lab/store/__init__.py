"""recsys_lab.store."""
