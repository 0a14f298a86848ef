"""Serving from a saved run: recommendations, update versions, similar items, cold-start measurement.

============================  ===================================================================================
:mod:`.saved_run`             the run serving answers from (on :mod:`recsys_lab.store.artifacts`), cached
:mod:`.recommend`             a user's history and top-k, two runs side by side, onboarding from items, personas
:mod:`.updates`               near-real-time updates by fold-in: write, read and list versions
:mod:`.similar`               similar items and the item space
:mod:`.cold_start`            the onboarding curve and fold-in recovery of a saved run on its own split
:mod:`.live`                  the run a long-lived service answers from, swapped when ``runs/PRODUCTION`` moves
:mod:`.events`                posted events: an fsynced journal folded into update versions in micro-batches
:mod:`.page`                  the comparison page's data: two runs side by side, title search, personas
:mod:`.app`                   ``recsys-lab serve``: the HTTP service (FastAPI + uvicorn) and the comparison page
============================  ===================================================================================

The public functions are re-exported here (``from recsys_lab import serving; serving.recommend(...)``). Note that
``recsys_lab.serving.recommend`` is therefore the function; the module is ``recsys_lab.serving.recommend`` only
through ``from recsys_lab.serving.recommend import ...``.
"""

from recsys_lab.serving.cold_start import cold_start_evaluation
from recsys_lab.serving.recommend import (compare_recommendations, persona_lists, recommend, recommend_for_items,
                                          user_history)
from recsys_lab.serving.saved_run import UPDATE_WINDOW, ColdStartWarning, ShortListWarning, run_metrics
from recsys_lab.serving.similar import ItemSpace, item_space, similar
from recsys_lab.serving.updates import update, updates

__all__ = ["recommend", "user_history", "compare_recommendations", "recommend_for_items", "update", "updates",
           "cold_start_evaluation", "ColdStartWarning", "ShortListWarning", "UPDATE_WINDOW", "similar", "persona_lists",
           "ItemSpace", "item_space", "run_metrics"]
