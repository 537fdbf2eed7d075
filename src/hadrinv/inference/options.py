"""Check an estimator's options against its constructor before anything is trained.

Options arrive from configuration files as plain mappings; a misspelt key or a wrong type would
otherwise surface only inside a training task, after the simulations. The keyword arguments of the
estimator's ``__init__`` (and of the base class it forwards ``**common`` to) define what is allowed;
their annotations define the types (validated by pydantic). ``embedding_options`` are checked against
the chosen embedding the same way, and ``members`` (a deep ensemble, `EstimatorMixture`) is allowed
for every estimator.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from hadrinv.inference.embeddings import EMBEDDINGS

# arguments the caller supplies from the data, never from a configuration
_SUPPLIED = {"self", "theta_dim", "x_dim", "in_features", "bounds"}
_EXTRA = {"members": (int, 1)}


class OptionsError(ValueError):
    """An unknown or mistyped option: 'dotted.key: problem'."""


def _parameters(cls: type) -> dict[str, tuple[Any, Any]]:
    """name -> (type, default) of the keyword arguments of cls.__init__ and of the base classes its
    ``**kwargs`` reach."""
    fields: dict[str, tuple[Any, Any]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            hints = typing.get_type_hints(init, include_extras=True)
        except Exception:  # an annotation that does not resolve is checked by name only
            hints = {}
        signature = inspect.signature(init)
        for name, parameter in signature.parameters.items():
            if (
                name in _SUPPLIED
                or name in fields
                or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
            ):
                continue
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[name] = (hints.get(name, Any), default)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return fields


def _model(cls: type, extra: dict[str, tuple[Any, Any]]):
    fields = {**_parameters(cls), **extra}
    fields = {name: (kind, None if default is ... else default) for name, (kind, default) in fields.items()}
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, strict=False)
    return create_model(f"{cls.__name__}Options", __config__=config, **fields)


def _validate(cls: type, options: dict, prefix: str, extra: dict) -> None:
    if not isinstance(options, dict):
        raise OptionsError(f"{prefix or cls.__name__}: expected a mapping of options, got {type(options).__name__}")
    try:
        _model(cls, extra).model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        where = f"{prefix}.{key}" if prefix else key
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(sorted({*_parameters(cls), *extra}))
            raise OptionsError(f"{where}: unknown option of {cls.__name__} (options: {allowed})") from None
        raise OptionsError(f"{where}: {first['msg']}") from None


def check_estimator_options(estimator_class: type, options: dict, prefix: str = "") -> dict:
    """Return ``options`` unchanged, or raise OptionsError naming the dotted key and the problem."""
    _validate(estimator_class, options, prefix, _EXTRA)
    embedding = options.get("embedding")
    if isinstance(embedding, str):
        if embedding not in EMBEDDINGS:
            where = f"{prefix}.embedding" if prefix else "embedding"
            raise OptionsError(f"{where}: unknown embedding {embedding!r}; choose from {', '.join(EMBEDDINGS)}")
        inner = f"{prefix}.embedding_options" if prefix else "embedding_options"
        _validate(EMBEDDINGS[embedding], options.get("embedding_options") or {}, inner, {})
    return options
