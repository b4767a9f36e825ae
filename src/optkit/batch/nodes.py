"""``optkit nodes``: the machines that would measure, with the facts the manifest records for each
figure (host name, CPU model and int8-relevant flags, ONNX Runtime execution providers) and, on a
Ray cluster, each node's id and resources (the custom ones a plan's ``target`` names).

On a cluster, one zero-CPU Ray task is pinned to each alive node
(``NodeAffinitySchedulingStrategy(soft=False)``) and reports that node's own facts, the very code
the manifest uses (:mod:`optkit.artifact.environment`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from optkit.artifact.environment import cpu_info, host_info


@dataclass
class NodeFacts:
    """One machine.

    Attributes:
        hostname: its host name.
        cpu_model: the CPU's model name.
        logical_cores: logical CPUs (None when unknown).
        cpu_flags: the int8/fp16-relevant flags it has (``avx512_vnni``, ``amx_int8``, ...).
        ort_providers: ONNX Runtime execution providers there.
        node_id: the Ray node id (None without Ray).
        resources: the Ray resources it offers (``{}`` without Ray).
    """

    hostname: str
    cpu_model: str
    logical_cores: int | None
    cpu_flags: list[str]
    ort_providers: list[str]
    node_id: str | None = None
    resources: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def local_facts() -> NodeFacts:
    """This machine's facts (the same functions that fill the manifest's ``environment``)."""
    cpu, host = cpu_info(), host_info()
    return NodeFacts(
        hostname=host.hostname,
        cpu_model=cpu.model,
        logical_cores=cpu.logical_cores,
        cpu_flags=sorted(k for k, v in cpu.flags.items() if v),
        ort_providers=host.ort_providers,
        node_id=host.ray_node_id,
    )


def cluster_facts(address: str) -> list[NodeFacts]:
    """Every alive node of the Ray cluster at ``address`` (``auto``, ``HOST:PORT`` or ``local``), each
    described by a task that ran there, with the node's resources from ``ray.nodes()``.

    Raises:
        DependencyError: Ray is not installed.
        PlanError: the cluster cannot be reached.
    """
    from optkit.batch.runner_ray import connect, import_ray

    ray = import_ray()
    started = connect(address)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0)(local_facts)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = [
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in nodes
        ]
        facts: list[NodeFacts] = ray.get(refs, timeout=120)
        for fact, node in zip(facts, nodes, strict=True):
            fact.node_id = node["NodeID"]
            fact.resources = _resources(node.get("Resources", {}))
        return facts
    finally:
        if started:
            ray.shutdown()


def _resources(resources: dict[str, Any]) -> dict[str, float]:
    """The resources a target can name (no per-node ``node:<ip>`` label, no memory sizes)."""
    skip = ("node:", "memory", "object_store_memory")
    return {k: float(v) for k, v in sorted(resources.items()) if not k.startswith(skip)}
