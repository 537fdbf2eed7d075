"""Cutting opaque per-event caches into chunks of events.

A cache is whatever was precomputed for a set of events (angular amplitudes, masses, ...), held in dicts,
lists, tuples (named tuples too) or dataclasses whose tensor / array leaves have the event dimension first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

__all__ = ["first_event_dimension", "slice_events"]


def slice_events(cache: Any, start: int, stop: int, n_events: int) -> Any:
    """Events start:stop of a cache: every tensor / array leaf whose leading dimension is n_events is sliced.

    Containers walked: dict, list, tuple (named tuples too) and dataclass instances; other leaves (scalars,
    lookup tables whose first dimension is not n_events, functions) are passed whole. Slices are views,
    nothing is copied.
    """
    if torch.is_tensor(cache) or isinstance(cache, np.ndarray):
        return cache[start:stop] if cache.ndim >= 1 and cache.shape[0] == n_events else cache
    if isinstance(cache, dict):
        return type(cache)((k, slice_events(v, start, stop, n_events)) for k, v in cache.items())
    if isinstance(cache, tuple) and hasattr(cache, "_fields"):
        return type(cache)(*(slice_events(v, start, stop, n_events) for v in cache))
    if isinstance(cache, (list, tuple)):
        return type(cache)(slice_events(v, start, stop, n_events) for v in cache)
    if dataclasses.is_dataclass(cache) and not isinstance(cache, type):
        changes = {
            f.name: slice_events(getattr(cache, f.name), start, stop, n_events)
            for f in dataclasses.fields(cache)
            if f.init
        }
        return dataclasses.replace(cache, **changes)
    return cache


def first_event_dimension(cache: Any) -> int | None:
    """Leading dimension of the first tensor / array leaf of a cache (depth first), None if it has none."""
    if torch.is_tensor(cache) or isinstance(cache, np.ndarray):
        return int(cache.shape[0]) if cache.ndim >= 1 else None
    if isinstance(cache, dict):
        children = list(cache.values())
    elif isinstance(cache, (list, tuple)):
        children = list(cache)
    elif dataclasses.is_dataclass(cache) and not isinstance(cache, type):
        children = [getattr(cache, f.name) for f in dataclasses.fields(cache)]
    else:
        return None
    for child in children:
        n = first_event_dimension(child)
        if n is not None:
            return n
    return None
