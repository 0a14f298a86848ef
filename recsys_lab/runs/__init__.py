"""recsys_lab.runs."""
