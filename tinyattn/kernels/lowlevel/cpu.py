"""What this CPU offers the compiled kernels: the vector width and the register tile, chosen from
what the CPU reports, never assumed.

The machines this code runs on change (AVX-512 one day, AVX2 the next, an ARM laptop after that),
so the register-tile product (``packed_matmul.py``) and the wide-vector loops (``fastmath.
wide_vectors``) read one ``Variant`` chosen here from LLVM's description of the host CPU
(``llvmlite.binding.get_host_cpu_features()``, the same list Numba compiles for):

  * ``avx512``: 512-bit vectors, 32 registers: an 8 x (2 vectors) tile = 16 accumulators;
  * ``avx2``: 256-bit vectors, 16 registers, fused multiply-add: a 6 x (2 vectors) tile = 12;
  * ``portable``: 128-bit vectors (SSE2, NEON: every 64-bit CPU has them), a 4 x (2 vectors) tile,
    and LLVM's ``fmuladd`` (fused where the CPU can, a multiply and an add where it cannot).

Numba's on-disk cache is keyed by the host CPU's name and features too, so code compiled on one
machine is never loaded on another. Nothing here runs at ``import tinyattn``: this module is
loaded with the compiled kernels, on first use.
"""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str           # "avx512" | "avx2" | "portable"
    vector_bits: int    # width of one vector register
    tile_rows: int      # MR: rows of the result tile; a tile row is two vectors
    fused: bool         # llvm.fma (the CPU has it) rather than llvm.fmuladd (it may not)

    def panel_width(self, itemsize: int) -> int:
        """NR: numbers per tile row (two vectors) for elements of ``itemsize`` bytes."""
        return 2 * self.vector_bits // (8 * itemsize)


AVX512 = Variant("avx512", 512, 8, True)
AVX2 = Variant("avx2", 256, 6, True)
PORTABLE = Variant("portable", 128, 4, False)
VARIANTS = {v.name: v for v in (AVX512, AVX2, PORTABLE)}


def choose(features) -> Variant:
    """The variant for a CPU with these features ({"avx512f": True, ...}, LLVM's names)."""
    if features.get("avx512f", False):
        return AVX512
    if features.get("avx2", False) and features.get("fma", False):
        return AVX2
    return PORTABLE


def _features_from_string(text: str) -> dict:
    """LLVM's feature-string form ("+avx2,+fma,-avx512f") as a dict ({"avx2": True, ...})."""
    return {part[1:]: part[0] == "+" for part in text.split(",") if part[:1] in "+-" and part[1:]}


def host_features() -> dict:
    """The features Numba compiles for: LLVM's list for this CPU, or - where the user told Numba
    to compile for another CPU (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``, e.g. for a cache
    shared between machines) - that CPU's, so the tile and vector width match the code Numba
    makes. {} where it cannot tell: then the portable variant."""
    try:
        from numba.core import config  # noqa: PLC0415

        if config.CPU_FEATURES:
            return _features_from_string(config.CPU_FEATURES)
        if config.CPU_NAME and config.CPU_NAME != "host":
            return {}       # a named CPU without its feature list: assume only the baseline
        import llvmlite.binding as llvm  # noqa: PLC0415

        return dict(llvm.get_host_cpu_features())
    except Exception:       # noqa: BLE001 - no feature list on this platform
        return {}


def host_cpu_name() -> str:
    """LLVM's name for this CPU's micro-architecture (e.g. 'znver4', 'skylake-avx512')."""
    try:
        import llvmlite.binding as llvm  # noqa: PLC0415

        return llvm.get_host_cpu_name()
    except Exception:       # noqa: BLE001
        return "unknown"


def cpu_model() -> str:
    """The CPU's marketing name (/proc/cpuinfo 'model name' on Linux), for reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=None)
def l2_cache_bytes(default: int = 256 * 1024) -> int:
    """The per-core level-2 cache this CPU reports (Linux sysfs, else ``sysconf``), or ``default``
    where it says nothing: the attention kernels size their tiles to stay inside it. Read once
    per process (the attention kernels ask on every call; reading sysfs each time cost ~0.2 ms,
    a fifth of a generation step)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            folder = os.path.join(base, entry)
            with open(os.path.join(folder, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(folder, "type")) as f:
                kind = f.read().strip()
            if level == "2" and kind in ("Unified", "Data"):
                with open(os.path.join(folder, "size")) as f:
                    text = f.read().strip()         # e.g. "1024K"
                scale = {"K": 1024, "M": 1024**2}.get(text[-1:], 1)
                return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    try:
        size = os.sysconf("SC_LEVEL2_CACHE_SIZE")
        if size > 0:
            return int(size)
    except (ValueError, OSError, AttributeError):
        pass
    return default


def describe() -> dict:
    """What a benchmark report records about the CPU."""
    feats = host_features()
    v = choose(feats)
    return {"model": cpu_model(), "llvm_cpu": host_cpu_name(), "cpus": os.cpu_count(),
            "variant": v.name, "vector_bits": v.vector_bits, "l2_bytes": l2_cache_bytes(), "tile_rows": v.tile_rows,
            "features": sorted(k for k in ("avx512f", "avx2", "fma", "avx", "sse4.2", "neon")
                               if feats.get(k))}


HOST = choose(host_features())
