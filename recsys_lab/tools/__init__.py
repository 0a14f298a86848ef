"""recsys_lab.tools: benchmarks, studies and the notebook linter, run from the CLI and the tests; never imported by
the library (an import-linter contract).

``bench`` (speed against baselines) · ``ann_bench`` (the MIPS index against hnswlib on the sets of ``ann_sets``) · ``study`` (the evaluation
studies behind the defaults) · ``notebook_lint`` (thin notebooks: one ``parameters`` cell, then calls).
"""
