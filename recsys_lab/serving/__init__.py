"""recsys_lab.serving.recommend."""
