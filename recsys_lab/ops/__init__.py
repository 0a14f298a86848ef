"""Operations around the retrains: alerts (:mod:`recsys_lab.ops.alerts`) and the SLA / staleness check
(:mod:`recsys_lab.ops.sla`, ``recsys-lab runs check``).

``ops`` reads the run registry (:mod:`recsys_lab.runs.registry`) and so sits above ``runs``; the CLI calls it after
a retrain (``recsys-lab retrain``) and for ``runs check``.
"""

__all__: list[str] = []
