"""recsys_lab.data."""
