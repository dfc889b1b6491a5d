"""Every random draw of a run comes from `--seed`: each phase (the original's training, each request, each
evaluation) reseeds the global RNGs from the run seed and its own label, so a phase draws the same numbers
whatever ran before it in the process and whether the original came from the cache."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *labels) -> int:
    """A 31-bit seed for one phase of a run: stable across processes and Python versions."""
    text = ":".join(str(part) for part in (seed, *labels))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def seed_everything(seed: int, *labels) -> int:
    """Seed Python's, NumPy's and torch's global RNGs (every device) for this phase; returns the seed."""
    phase_seed = derive_seed(seed, *labels)
    random.seed(phase_seed)
    np.random.seed(phase_seed)
    torch.manual_seed(phase_seed)
    return phase_seed


def generator(seed: int, *labels) -> torch.Generator:
    """A CPU generator for draws that APIs let us pass explicitly (batch order, permutations, noise)."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
