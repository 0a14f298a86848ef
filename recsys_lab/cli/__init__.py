"""recsys_lab.cli.main."""
