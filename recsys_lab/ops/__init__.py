"""Operations around the retrains: alerts (:mod:`recsys_lab.ops.alerts`), the monitoring page over time
(:mod:`recsys_lab.ops.monitor`), backfills over past cut-offs (:mod:`recsys_lab.ops.backfill`) and the SLA / staleness check
(:mod:`recsys_lab.ops.sla`, ``recsys-lab runs check``).

``ops`` reads the run registry (:mod:`recsys_lab.runs.registry`) and so sits above ``runs``; the CLI calls it after
a retrain (``recsys-lab retrain``) and for ``runs check``.
"""

__all__: list[str] = []
