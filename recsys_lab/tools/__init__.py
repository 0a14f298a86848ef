"""recsys_lab.tools."""
