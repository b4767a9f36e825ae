"""The machine and software a run used, for the manifest: versions and the CPU flags that decide
int8 speed (VNNI / AMX give int8 dot products; without them dynamic int8 gains far less)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from functools import lru_cache
from importlib import metadata

from optkit.records.manifest import CpuRecord, EnvironmentRecord, HostRecord

CPU_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_int8",
    "amx_bf16",
)
PACKAGES = (
    "optkit",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxsim",
    "torch",
    "transformers",
    "pydantic",
    "seqeval",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a conversion (absent ones omitted)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def cpu_info() -> CpuRecord:
    """CPU model, logical core count and the int8/fp16-relevant flags (from /proc/cpuinfo on
    Linux, py-cpuinfo elsewhere)."""
    flags: set[str] = set()
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "flags" and not flags:
                    flags = set(value.split())
                elif key.strip() == "model name" and not model:
                    model = value.strip()
    except OSError:
        import cpuinfo

        data = cpuinfo.get_cpu_info()
        flags, model = set(data.get("flags", [])), data.get("brand_raw", model)
    return CpuRecord(model=model, logical_cores=os.cpu_count(), flags={f: f in flags for f in CPU_FLAGS})


def ray_node_id() -> str | None:
    """The Ray node id when this process is a Ray worker or driver that has already imported and
    started Ray (``optkit batch --ray``), else None. Never imports Ray itself."""
    ray = sys.modules.get("ray")
    if ray is None:
        return None
    try:
        if not ray.is_initialized():
            return None
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # a Ray that is shutting down or half-initialised: no node to name
        return None


def host_info() -> HostRecord:
    """This machine's host name, ONNX Runtime execution providers and Ray node id (if any)."""
    import onnxruntime

    return HostRecord(
        hostname=socket.gethostname(),
        ort_providers=list(onnxruntime.get_available_providers()),
        ray_node_id=ray_node_id(),
    )


def environment() -> EnvironmentRecord:
    """Python, platform, package versions, CPU facts and the host that measured."""
    return EnvironmentRecord(
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages=package_versions(),
        cpu=cpu_info(),
        host=host_info(),
    )
