"""recsys_lab.models.lightfm."""
