"""recsys_lab.store: a run folder on disk.

``folder`` (the layout of ``runs/<run_id>/`` and one typed JSON reader) · ``artifacts`` (the only reader and writer
of ``artifacts/``: ``load_run`` -> ``SavedRun``, one error naming the file; no pickle is ever loaded).
"""
