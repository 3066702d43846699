"""JointLoss: a weighted sum of losses whose weights may follow an epoch schedule."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def _term(term: int, n: int) -> int:
    if not -n <= term < n:
        raise ValueError(f"term must index one of the {n} losses, got {term}")
    return term % n


class LinearRamp:
    """Scales one term's weight by a factor that goes linearly from `start` (epoch 0) to
    `end` (epoch `epochs` and after): the "increase" strategy of Kervadec et al. when
    applied to the boundary term. term: index of the scheduled loss (default the last)."""

    def __init__(self, start: float = 0.0, end: float = 1.0, epochs: int = 10, term: int = -1):
        if int(epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs!r}")
        self.start, self.end, self.epochs, self.term = float(start), float(end), int(epochs), int(term)

    def factor(self, epoch: int) -> float:
        return self.start + (self.end - self.start) * min(epoch, self.epochs) / self.epochs

    def __call__(self, epoch: int, weights: Sequence[float]) -> list[float]:
        out = list(weights)
        i = _term(self.term, len(out))
        out[i] *= self.factor(epoch)
        return out


class Rebalance:
    """Kervadec et al.'s "rebalance" strategy: alpha_e = min(start + step * e, cap); the
    scheduled term (default the last, the boundary loss) gets alpha_e times its weight and
    every other term (1 - alpha_e) times its weight, i.e. (1 - a) L_region + a L_boundary.
    The paper starts at 0.01 and adds 0.01 per epoch."""

    def __init__(self, start: float = 0.01, step: float = 0.01, cap: float = 0.99, term: int = -1):
        if not 0 <= float(start) <= 1 or not 0 <= float(cap) <= 1:
            raise ValueError(f"start and cap must be in [0, 1], got start={start!r} cap={cap!r}")
        if not float(step) >= 0:
            raise ValueError(f"step must be non-negative, got {step!r}")
        self.start, self.step, self.cap, self.term = float(start), float(step), float(cap), int(term)

    def alpha(self, epoch: int) -> float:
        return min(self.start + self.step * epoch, self.cap)

    def __call__(self, epoch: int, weights: Sequence[float]) -> list[float]:
        a = self.alpha(epoch)
        i = _term(self.term, len(weights))
        return [w * (a if j == i else 1 - a) for j, w in enumerate(weights)]


Schedule = Callable[[int, Sequence[float]], Sequence[float]]


class JointLoss(nn.Module):
    """sum_i w_i(epoch) * losses[i](logits, target).

    weights: the base weights (default all 1). schedule: None (constant weights) or a
    callable (epoch, base_weights) -> weights, e.g. LinearRamp or Rebalance above.
    The epoch starts at 0; call `step()` once per epoch (after it, like an LR scheduler) or
    `set_epoch(e)` when resuming. The epoch is saved in state_dict (extra state).
    `last_terms` holds the detached value of each term from the latest call, for logging.
    """

    def __init__(self, losses: Sequence[Callable], weights: Sequence[float] | None = None,
                 schedule: Schedule | None = None):
        super().__init__()
        losses = list(losses)
        if not losses or not all(callable(f) for f in losses):
            raise TypeError("losses must be a non-empty sequence of callables (logits, target) -> loss")
        if weights is None:
            weights = [1.0] * len(losses)
        weights = [float(w) for w in weights]
        if len(weights) != len(losses):
            raise ValueError(f"weights must have one entry per loss ({len(losses)}), got {len(weights)}")
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be None or a callable (epoch, weights) -> weights, got {schedule!r}")
        # Modules are registered (so .to() and state_dict see their buffers); plain
        # callables are kept as they are.
        self.losses = nn.ModuleList([f for f in losses if isinstance(f, nn.Module)])
        self._fns = losses
        self.base_weights = weights
        self.schedule = schedule
        self.epoch = 0
        self.last_terms: list[torch.Tensor] = []
        self.current_weights()  # fail now, not mid-training, on a bad schedule

    def current_weights(self) -> list[float]:
        if self.schedule is None:
            return list(self.base_weights)
        w = [float(v) for v in self.schedule(self.epoch, list(self.base_weights))]
        if len(w) != len(self.base_weights):
            raise ValueError(f"schedule returned {len(w)} weights for {len(self.base_weights)} losses")
        return w

    def step(self) -> None:
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def get_extra_state(self):
        return {"epoch": self.epoch}

    def set_extra_state(self, state):
        self.epoch = int(state["epoch"])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = None
        terms = []
        for w, f in zip(self.current_weights(), self._fns):
            if w == 0:  # a term switched off by the schedule costs nothing
                terms.append(torch.zeros((), device=logits.device))
                continue
            value = f(logits, target)
            terms.append(value.detach())
            total = w * value if total is None else total + w * value
        self.last_terms = terms
        return total if total is not None else (logits * 0).sum()
