"""The command line ``recsys-lab`` (entry point :func:`recsys_lab.cli.main.main`), one module per command family."""
