"""The device an analysis runs on, from the accelerator names Lightning users already type."""

from __future__ import annotations

import torch


def device(accelerator: str | torch.device = "auto") -> torch.device:
    """cpu, cuda (or gpu), a torch.device, or auto: CUDA when there is one."""
    if isinstance(accelerator, torch.device):
        return accelerator
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator == "gpu":
        accelerator = "cuda"
    return torch.device(accelerator)
