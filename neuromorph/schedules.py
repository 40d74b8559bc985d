"""Learning-rate schedules: the rate of every optimizer step as a pure function of the step number.

A schedule is ``(base_lr, step, total_steps) -> lr`` with ``step`` counted from 0 over the whole run (all epochs),
so a resumed run continues on exactly the rates an uninterrupted one would use, with no scheduler state to store.

- ``constant``: ``base_lr`` throughout.
- ``cosine``: cosine annealing from ``base_lr`` to 0 over the run (Loshchilov & Hutter 2017, SGDR, without
  restarts): ``lr = base_lr * (1 + cos(pi * step / total_steps)) / 2``.
- ``onecycle``: the one-cycle policy (Smith & Topin 2019) as ``torch.optim.lr_scheduler.OneCycleLR`` computes it
  with its defaults: cosine warm-up over the first 30 % from ``base_lr / 25`` to ``base_lr``, then cosine annealing
  to ``base_lr / 25 / 1e4``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from neuromorph.errors import lookup

LrSchedule = Callable[[float, int, int], float]

ONECYCLE_WARMUP = 0.3  # OneCycleLR's pct_start
ONECYCLE_DIV = 25.0  # OneCycleLR's div_factor: initial lr = base_lr / 25
ONECYCLE_FINAL_DIV = 1e4  # OneCycleLR's final_div_factor: final lr = initial lr / 1e4


def _constant(base_lr: float, step: int, total_steps: int) -> float:
    return base_lr


def _cosine(base_lr: float, step: int, total_steps: int) -> float:
    return base_lr * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps))) / 2


def _anneal(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def _onecycle(base_lr: float, step: int, total_steps: int) -> float:
    initial = base_lr / ONECYCLE_DIV
    final = initial / ONECYCLE_FINAL_DIV
    warmup_end = float(ONECYCLE_WARMUP * total_steps) - 1  # as OneCycleLR places its phase boundaries
    last = float(total_steps) - 1
    if step <= warmup_end:
        return _anneal(initial, base_lr, step / warmup_end if warmup_end > 0 else 1.0)
    return _anneal(base_lr, final, (step - warmup_end) / (last - warmup_end) if last > warmup_end else 1.0)


# schedule name -> (base_lr, step, total_steps) -> lr of that step
LR_SCHEDULES: dict[str, LrSchedule] = {"constant": _constant, "cosine": _cosine, "onecycle": _onecycle}


def get_lr_schedule(name: str) -> LrSchedule:
    """The schedule called ``name``; the one error for an unknown schedule (the training config checks with it)."""
    return lookup(LR_SCHEDULES, name, "learning-rate schedule")


def lr_at(schedule: str, base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    return get_lr_schedule(schedule)(base_lr, step, total_steps)
