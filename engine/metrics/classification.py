"""Classification accuracy (ANCHORS.md section 2: Dt, Df and Dr performance of a classification model)."""
from __future__ import annotations

import numpy as np


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Percent of examples whose most probable class is their label (NaN for no examples)."""
    if len(labels) == 0:
        return float("nan")
    return float(100.0 * np.mean(probabilities.argmax(axis=1) == labels))
