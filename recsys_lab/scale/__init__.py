"""Scale out on Ray: hyper-parameter sweeps (:mod:`recsys_lab.scale.sweep`, Ray Tune) and every user's top-k
(:mod:`recsys_lab.scale.score`, Ray Data). :mod:`recsys_lab.scale.cluster` starts or joins Ray; only this folder
imports ``ray`` (the ``ray`` extra), and only inside functions, so importing it costs nothing."""

__all__: list[str] = []
