"""Unfolded bin contents as a distribution of unit area, with the covariance carried through the normalisation."""

from __future__ import annotations

import numpy as np


def unit_area(content: np.ndarray, covariance: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """density_i = content_i / (sum content * width_i) and its covariance J C J^T, J the map's Jacobian. The
    normalisation makes the result singular in one direction: one degree of freedom less."""
    total = content.sum()
    jacobian = (np.eye(len(width)) / total - content[:, None] / total**2) / width[:, None]
    return content / (total * width), jacobian @ covariance @ jacobian.T
