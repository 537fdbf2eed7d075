"""The generators of the event-generator workflow behind one call each: build, train (a Ray task), load."""

from __future__ import annotations

import math
import time

import torch

from hadrinv.workflows.event_generator.config import OT_WITHOUT_JSU, EventGeneratorConfig
from hadrinv.workflows.execution import thread_limit


def settings_of(
    config: EventGeneratorConfig, method: str, seed: int, feature_names: tuple[str, ...] = (), dalitz: bool = False
):
    """The method's settings; with Dalitz features (`Representation.dalitz`) and no ``ot.johnson_su_features``, the
    Johnson-SU transform applies to the first, the two-body mass (narrow resonances on a broad spectrum have a low
    kurtosis, so the kurtosis rule would leave them out)."""
    from hadrinv.inference.discflow import DiscFlowSettings, GeneratorSettings
    from hadrinv.inference.ot_generator import OTGeneratorSettings

    if method in ("flow", "discflow"):
        flow = config.flow.model_dump()
        if method == "flow":
            return GeneratorSettings(**flow, seed=seed)
        return DiscFlowSettings(**flow, **config.discflow.model_dump(), seed=seed)
    ot = config.ot.model_dump()
    names = ot.pop("johnson_su_features")
    if names is None and dalitz:
        names = [feature_names[0]]
    chosen = None if names is None else tuple(feature_names.index(n) for n in names)  # names checked by the run
    return OTGeneratorSettings(**ot, johnson_su=method != OT_WITHOUT_JSU, johnson_su_features=chosen, seed=seed)


def build(
    config: EventGeneratorConfig,
    method: str,
    feature_names: tuple[str, ...],
    seed: int,
    device: str,
    dalitz: bool = False,
):
    from hadrinv.inference.discflow import DiscFlowGenerator, FlowGenerator
    from hadrinv.inference.ot_generator import OTAttentionGenerator

    settings = settings_of(config, method, seed, feature_names, dalitz)
    features = len(feature_names)
    if method == "flow":
        return FlowGenerator(features, settings)
    if method == "discflow":
        return DiscFlowGenerator(features, settings)
    return OTAttentionGenerator(features, settings, device=device)


def load(method: str, path: str, device: str):
    from hadrinv.inference.discflow import FlowGenerator
    from hadrinv.inference.ot_generator import OTAttentionGenerator

    if method.startswith("ot-attention"):
        return OTAttentionGenerator.load(path, device=device)
    return FlowGenerator.load(path, map_location=device)  # a DiscFlowGenerator too, by what the file holds


def final_loss(history) -> float:
    """The last training loss of either kind of generator (NaN if none): a non-finite one is a failed fit."""
    losses = history.get("loss", []) if isinstance(history, dict) else getattr(history, "loss", [])
    return float(losses[-1]) if losses else math.nan


def train_task(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    x_val: torch.Tensor | None,
    weight_val: torch.Tensor | None,
    config: dict,
    feature_names: list[str],
    dalitz: bool,
    method: str,
    model_path: str,
    seed: int,
    threads: int | None,
    device: str,
) -> dict:
    """One generator (a Ray task): fit, save where the driver reads it, return a record."""
    thread_limit(threads)
    parsed = EventGeneratorConfig.model_validate(config)
    generator = build(parsed, method, tuple(feature_names), seed, device, dalitz)
    start = time.perf_counter()
    if method in ("flow", "discflow"):
        generator.fit(x, weight, x_val=x_val, weight_val=weight_val, device=device)
    else:
        generator.fit(x, weight, x_val=x_val, weight_val=weight_val)
    seconds = time.perf_counter() - start
    generator.save(model_path)
    transformed = list(getattr(generator.history, "johnson_su_features", []))
    return {
        "method": method,
        "model": model_path,
        "seconds": seconds,
        "final_loss": final_loss(generator.history),
        "johnson_su_features": transformed,
    }
