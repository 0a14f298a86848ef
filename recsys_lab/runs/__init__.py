"""recsys_lab.runs: the run lifecycle, a run being a folder under ``runs/``.

``execute`` (the recipe: lock -> start -> inject -> engine -> record -> promote) · ``signals`` (stop signals and the
time budget) · ``engine`` (the in-process papermill engine) · ``child`` (the kernel engine's child process) ·
``outcome`` (the promotion rule, a pure function of recorded outcomes) · ``record`` (writes the outcome, report and
manifest) · ``production`` (the ``PRODUCTION`` pointer: validated, moved with an intent, reconciled) · ``registry``
(queries over run folders: resolve, show, compare, promote) · ``history`` (the registry over time) · ``retention``
(``runs gc``) · ``lock`` (one retrain at a time) · ``project`` (project folders and shipped notebooks).
"""
