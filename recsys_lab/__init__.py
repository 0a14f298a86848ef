"""recsys_lab: a Jupyter-first, research-to-production toolkit for recommender systems.

Modules (one noun each): errors, config, datasets, warehouse, features, split, models (LightFM), ann
(pynndescent), evaluation, pipeline, runs (papermill), report, plots (matplotlib), cli.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
