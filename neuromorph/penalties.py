"""Activity penalties: a registry of functions ``(spikes, fan_outs, power) -> per-sample penalty [B]``.

- ``none``: 0.
- ``spikes``: the spike-count ("neuron") penalty, ``sum_l sum_i sum_t s[l,i,t]`` (psi = 1, p = 1).
- ``synaptic``: the spiking synaptic penalty of Suetake et al. (arXiv 2302.01500),
  ``Omega_syn = (1/p) * sum_l sum_i psi[l,i] * sum_t s[l,i,t]**p`` with psi the exact fan-out. For binary spikes
  ``p * Omega_syn`` is the synaptic-operation count (hw_models.opcount computes both).
- ``rate_l2``: an L2 penalty on firing rates, ``sum_l sum_i (mean_t s[l,i,t])**2``.
- ``energy``: joules per sample on a device profile (hw_models.energy.energy_penalty), built from the same counting
  code as the energy report; it needs the model and the profile, so it is made by :func:`build_penalty`.

``spikes`` are time-major ``[T, B, *shape]`` tensors, one per spike source, and ``fan_outs`` the matching exact
fan-outs (``SpikingNet.fan_outs``). The trainer averages the result over the batch (normalized per sample) and
multiplies it by lambda (:func:`lambda_at`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hw_models.opcount import weighted_spike_sums
from neuromorph.errors import NeuromorphError, lookup

# (spikes, fan_outs, power, counts=None) -> [B]; counts: SNNOutput.spike_counts, the spikes summed over time where the
# neuron kernels computed them (the same values and gradient as summing the spikes; read them where the sum is used)
PenaltyFn = Callable[..., torch.Tensor]


def no_penalty(spikes: Sequence[torch.Tensor], fan_outs: Sequence[torch.Tensor], power: float = 1.0,
               counts: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    batch = spikes[0].shape[1] if spikes else 1
    device = spikes[0].device if spikes else None
    return torch.zeros(batch, device=device)


def spike_count_penalty(
    spikes: Sequence[torch.Tensor], fan_outs: Sequence[torch.Tensor], power: float = 1.0,
    counts: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_l sum_i sum_t s[l,i,t]`` per sample (psi = 1)."""
    ones = [torch.ones((), device=s.device) for s in spikes]
    return weighted_spike_sums(spikes, ones, power=1.0, counts=counts).sum(dim=0)


def synaptic_penalty(
    spikes: Sequence[torch.Tensor], fan_outs: Sequence[torch.Tensor], power: float = 1.0,
    counts: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(1/p) * sum_l sum_i psi[l,i] * sum_t s[l,i,t]**p`` per sample."""
    return weighted_spike_sums(spikes, fan_outs, power=power, counts=counts).sum(dim=0) / power


def rate_l2_penalty(
    spikes: Sequence[torch.Tensor], fan_outs: Sequence[torch.Tensor], power: float = 1.0,
    counts: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_l sum_i (mean_t s[l,i,t])**2`` per sample (from the spikes: torch's mean is not exactly counts / T)."""
    total = 0.0
    for s in spikes:
        rate = s.mean(dim=0)
        total = total + rate.pow(2).flatten(start_dim=1).sum(dim=1)
    return total


def _built_per_model(
    spikes: Sequence[torch.Tensor], fan_outs: Sequence[torch.Tensor], power: float = 1.0,
    counts: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    raise NeuromorphError("this penalty depends on the model and a device profile: make it with build_penalty()")


def _provided(reference: str) -> Callable[..., Any]:
    """The function ``module:name`` of a penalty built above this module (pricing), imported when first used, so
    that training does not import the cost model (:mod:`hw_models.energy` sits above training)."""
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Penalty:
    """A penalty; ``factory(model, device_profile) -> fn`` when it depends on the model (else ``fn`` is used).

    ``factory`` and ``check`` (``check(device_profile)`` refuses settings the penalty cannot be built with, before
    any data is loaded) may name a function ``"module:name"`` of the layer that provides the penalty.
    """

    name: str
    fn: PenaltyFn
    summary: str
    factory: Callable[[Any, str | None], PenaltyFn] | str | None = None
    check: Callable[[str | None], Any] | str | None = None

    def check_settings(self, device_profile: str | None) -> None:
        if self.check is not None:
            (_provided(self.check) if isinstance(self.check, str) else self.check)(device_profile)

    def build(self, model: Any, device_profile: str | None) -> PenaltyFn:
        if self.factory is None:
            return self.fn
        factory = _provided(self.factory) if isinstance(self.factory, str) else self.factory
        return factory(model, device_profile)


PENALTIES: dict[str, Penalty] = {
    p.name: p
    for p in (
        Penalty("none", no_penalty, "no activity penalty (baseline)"),
        Penalty("spikes", spike_count_penalty, "spike count, psi = 1 (baseline)"),
        Penalty("synaptic", synaptic_penalty, "spiking synaptic penalty: (1/p) sum psi * s**p = SynOps/p"),
        Penalty("rate_l2", rate_l2_penalty, "L2 on firing rates, sum (mean_t s)**2"),
        Penalty("energy", _built_per_model, "joules per sample on --device-profile (spike-driven energy + neuron "
                "updates; lambda 1e6 on loihi1 for the MNIST MLP)", factory="hw_models.energy:energy_penalty",
                check="hw_models.energy:penalty_profile"),
    )
}


def get_penalty(name: str) -> Penalty:
    return lookup(PENALTIES, name, "penalty")


def build_penalty(name: str, model: Any = None, device_profile: str | None = None) -> PenaltyFn:
    """The penalty function for ``name``, built for ``model`` and ``device_profile`` when the penalty needs them."""
    return get_penalty(name).build(model, device_profile)


def _constant_lambda(lam: float, epoch: int, ramp_epochs: int) -> float:
    return lam


def _ramped_lambda(lam: float, epoch: int, ramp_epochs: int) -> float:
    return lam * min(1.0, (epoch + 1) / max(1, ramp_epochs))


LambdaSchedule = Callable[[float, int, int], float]

# schedule name -> (lam, epoch (0-based), ramp_epochs) -> lambda used in that epoch
LAMBDA_SCHEDULES: dict[str, LambdaSchedule] = {"constant": _constant_lambda, "ramp": _ramped_lambda}


def get_lambda_schedule(name: str) -> LambdaSchedule:
    """The schedule called ``name``; the one error for an unknown schedule (the training config checks with it)."""
    return lookup(LAMBDA_SCHEDULES, name, "lambda schedule")


def lambda_at(lam: float, schedule: str, epoch: int, ramp_epochs: int) -> float:
    """Lambda used in ``epoch`` (0-based): constant, or ramped linearly from lam/ramp_epochs to lam."""
    return get_lambda_schedule(schedule)(lam, epoch, ramp_epochs)
