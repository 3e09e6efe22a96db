"""Facts about the software and hardware a result was produced on (recorded in every result)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def git_sha() -> str | None:
    """The git commit of the varbench checkout, or None when installed without git."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def describe_device(device: str | None = None) -> dict:
    import torch

    dev = torch.device(device or "cpu")
    info: dict = {"device": str(dev)}
    if dev.type == "cuda" and torch.cuda.is_available():
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(gpu_name=props.name, gpu_memory_bytes=int(props.total_memory), gpu_count=torch.cuda.device_count())
    else:
        info.update(cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads())
    return info


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
        **describe_device(device),
    }
