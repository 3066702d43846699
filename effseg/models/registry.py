"""The model registry behind effseg.create_model / effseg.list_models."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about a registered model.

    params_m: parameter count in millions at num_classes=6 (the figure the tests hold
    the implementation to, within 2%); paper: what the architecture follows;
    checkpoint: where compatible weights come from (e.g. GeoSeg).
    """
    name: str
    factory: Callable[..., nn.Module]
    params_m: float
    paper: str
    summary: str
    checkpoint: str = ""
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, *, params_m: float, paper: str, summary: str, checkpoint: str = "",
             **defaults):
    """Decorator: register `factory(num_classes, **options) -> nn.Module` under `name`."""
    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(name, factory, params_m, paper, summary, checkpoint,
                                    dict(defaults))
        return factory
    return deco


def list_models() -> list[str]:
    """Names accepted by create_model, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"name: unknown model {name!r}{hint}; available: "
                         f"{', '.join(list_models())}") from None


def create_model(name: str, num_classes: int = 6, *, seed: int | None = 0,
                 **options) -> nn.Module:
    """Build a registered model with freshly initialised weights.

    seed: weights come from this seed (default 0) so two calls give the same model;
    the global RNG is left as it was. None uses the global RNG.
    options: passed to the model's constructor (e.g. in_channels=4 for RGB+NIR).
    """
    info = model_info(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    kwargs = {**info.defaults, **options}
    if seed is None:
        return info.factory(num_classes, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return info.factory(num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tensors shared under two names count once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
