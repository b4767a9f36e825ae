"""``optkit batch``: a plan of models × recipes run one item per task, locally (``--jobs N``
processes) or on a Ray cluster (``--ray ADDRESS``), with one summary for the whole plan.

Ray is imported only by :mod:`optkit.batch.runner_ray` and :mod:`optkit.batch.nodes`, and only when
``--ray`` is given: nothing else (the single-model path included) needs it.
"""
