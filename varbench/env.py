"""Facts about the machine and the installation: versions, device, git sha (recorded in every result), and the
environment switches varbench reads (``VARBENCH_HOME``, ``VARBENCH_OFFLINE``, ``VARBENCH_KEEP_HEAP``) and the CPU
allocator settings of the CLI."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

_OFFLINE_VARIABLES = ("VARBENCH_OFFLINE", "HF_HUB_OFFLINE")
HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"  # torch's CPU allocator: 2 MB-aligned, madvise(MADV_HUGEPAGE) buffers
KEEP_HEAP_VARIABLE = "VARBENCH_KEEP_HEAP"  # 0/false/no/off: leave glibc's malloc as it is
_GLIBC_MALLOC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
KEPT_HEAP_TRIM_BYTES = 2**31 - 1  # free memory glibc keeps at the top of its heap (mallopt takes an int)
_heap_kept = False


def allocator_environment(tuned: bool) -> dict[str, str]:
    """Environment variables that give a new process the CLI's allocator (``tuned``) or the defaults; glibc reads
    ``MALLOC_*`` at start, what ``tune_cpu_allocator`` sets with mallopt in a running one."""
    if not tuned:
        return {HUGE_PAGES_VARIABLE: "0"}
    return {HUGE_PAGES_VARIABLE: "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(KEPT_HEAP_TRIM_BYTES)}


def tune_cpu_allocator() -> None:
    """Keep the memory of freed tensors for the next ones instead of faulting in fresh pages, unless the user chose.

    A VAR-d16 batch of 4 allocates ~130 MB activations dozens of times.  glibc serves requests over 32 MB with
    fresh mmaps and gives them back on free, so every one is faulted in again: 1.7-2.2 million page faults per
    batch measured here, the VQ decode 1.6x slower than in a process that reuses its heap.  So: torch's buffers of
    2 MB and more on transparent huge pages (``THP_MEM_ALLOC_ENABLE``), and glibc told to serve everything from its
    heap and keep up to 2 GB free at its top (``mallopt``; ``VARBENCH_KEEP_HEAP=0`` or any ``MALLOC_*``/
    ``GLIBC_TUNABLES`` setting of yours leaves it alone).  Values are unchanged; the resident size stays at its peak.
    torch reads its switch at its first CPU allocation, so the CLI calls this before any command runs.
    """
    global _heap_kept
    os.environ.setdefault(HUGE_PAGES_VARIABLE, "1")
    opted_out = os.environ.get(KEEP_HEAP_VARIABLE, "").lower() in ("0", "false", "no", "off")
    if opted_out or any(k in os.environ for k in _GLIBC_MALLOC_VARIABLES):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt  # glibc; other C libraries: left alone
    except (OSError, AttributeError):
        return
    _heap_kept = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, KEPT_HEAP_TRIM_BYTES) == 1


def home() -> Path:
    """varbench's cache directory: ``$VARBENCH_HOME``, else ``$XDG_CACHE_HOME/varbench`` (``~/.cache/varbench``)."""
    env = os.environ.get("VARBENCH_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "varbench"


def offline() -> bool:
    """Downloads are off: ``VARBENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``)."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in _OFFLINE_VARIABLES)


PROBE_SECONDS = 3.0  # how long a download waits to learn that its host cannot be reached


def why_no_download(host: str) -> str | None:
    """Why a download from ``host`` cannot happen now (the offline switch, no route to it), or None."""
    import socket
    import threading

    if offline():
        return "downloads are off (VARBENCH_OFFLINE/HF_HUB_OFFLINE)"
    failure: list[str] = ["timed out"]

    def probe() -> None:  # in a thread: a name lookup has no timeout of its own
        try:
            with socket.create_connection((host, 443), timeout=PROBE_SECONDS):
                failure.clear()
        except OSError as e:
            failure[:] = [type(e).__name__]

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(PROBE_SECONDS + 1)
    return f"{host} cannot be reached ({failure[0]})" if failure else None


def git_sha() -> str | None:
    """The git commit of the varbench checkout, or None when installed without git."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def describe_device(device: str | None = None) -> dict:
    """The device of a run: its name, and the GPU or the CPU with its torch thread count."""
    import torch

    dev = torch.device(device or "cpu")
    info: dict = {"device": str(dev)}
    if dev.type == "cuda" and torch.cuda.is_available():
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(device_name=props.name, gpu_memory_bytes=int(props.total_memory),
                    gpu_count=torch.cuda.device_count(), torch_threads=torch.get_num_threads())
    else:
        info.update(device_name=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                    torch_threads=torch.get_num_threads())
    return info


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (None where that cannot be read)."""
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return None


def native_half(device: str | None = None) -> bool | None:
    """Whether the device runs bf16 matmuls natively: a CUDA GPU with bf16 support, or a CPU with AVX512-BF16 or AMX
    (read from /proc/cpuinfo; None where that cannot be read).  Elsewhere torch emulates bf16, far slower than fp32."""
    import torch

    dev = torch.device(device or "cpu")
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    flags = cpu_flags()
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & flags)


def collect(device: str | None = None) -> dict:
    """Versions (python, torch, CUDA, numpy, varbench, git sha) and the device."""
    import numpy as np
    import torch

    from varbench import __version__

    return {
        "varbench_version": __version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the SIMD kernels torch picked (AVX2, AVX512...)
        "native_bf16": native_half(device),  # bf16 in hardware (AVX512-BF16/AMX, or a bf16 GPU); else emulated
        "cpu_huge_pages": os.environ.get(HUGE_PAGES_VARIABLE) == "1",  # see tune_cpu_allocator (speed, not values)
        "cpu_heap_kept": _heap_kept,
        **describe_device(device),
    }


PLATFORM_KEYS = ("torch", "device", "cpu_capability", "device_name")  # equal: the same float arithmetic


def machine(device: str | None = None) -> dict:
    """What a benchmark records about the machine: the vector/matrix CPU flags, native bf16 and ``collect()``."""
    flags = cpu_flags() or set()
    return {"cpu_flags": sorted(w for w in flags if w.startswith(("avx", "amx", "fma"))),
            "native_bf16": native_half(device), "env": collect(device)}
