"""Multi-step neuron kernels: a population's recurrence over all T steps in one autograd function.

Norse's cells (``LIFCell``, ``LIFBoxCell``, ``LICell``) stay the definition and the reference: a kernel here runs the
same floating-point operations in the same order (so its spikes and voltages are identical, bit for bit), with no
autograd graph in the forward pass and a hand-written backward through time. It saves one tensor for the backward
pass, the pre-reset voltage ``u`` of every step (spikes are recomputed from it).

Per step, with ``a = dt*tau_mem_inv`` and ``b = dt*tau_syn_inv`` (DESIGN.md section 3; ``v0 = v_leak``, ``i0 = 0``)::

    LIF     j = i + x;  u = v + a*((v_leak - v) + j);  i = j + (-b)*j;  z = H(u - v_th);  v = (1 - z)*u + z*v_reset
    LIFBox  u = v + a*(x + v_leak - v);  z = H(u - v_th);  v = (1 - z)*u + z*v_reset
    LI      j = i + x;  v = v + a*((v_leak - v) + j);  i = j + (-b)*j;  output v

Backward, in reverse time, with ``s = 1/(|u - v_th| + 1)**2`` (Norse's SuperSpike; it ignores alpha), ``gz`` the
gradient of the spikes and ``G`` the gradient reaching this step's new voltage from the future::

    D  = (gz + G*(v_reset - u))*s + G*(1 - z)      (LIF, LIFBox: dL/du)
    D  = gy + G                                    (LI: dL/dv, gy the gradient of the output)
    gj = a*D + (1 - b)*gj_next;  gx = gj;  G_prev = (1 - a)*D    (LIFBox and the current-free parts: gx = a*D)

The kernel is chosen per population by :func:`kernel_for` from :data:`KERNELS` (cell and surrogate; today the
``super`` surrogate, Norse's default); anything else runs Norse's cell step by step. ``NEUROMORPH_NEURON_KERNEL=norse``
turns the kernels off (the reference), and :func:`describe` says what runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

KERNEL_ENV = "NEUROMORPH_NEURON_KERNEL"


@dataclass(frozen=True)
class Constants:
    """A population's parameters as Norse holds them (0-d float32 tensors) and its decays, computed as Norse
    computes them (``a = dt * tau_mem_inv``, ``-b = -dt * tau_syn_inv``)."""

    a: torch.Tensor
    minus_b: torch.Tensor
    v_leak: torch.Tensor
    v_th: torch.Tensor
    v_reset: torch.Tensor

    @classmethod
    def of(cls, cell) -> Constants:
        p, dt = cell.p, cell.dt
        tau_syn_inv = getattr(p, "tau_syn_inv", None)
        minus_b = -dt * tau_syn_inv if tau_syn_inv is not None else torch.zeros(())
        return cls(a=dt * p.tau_mem_inv, minus_b=torch.as_tensor(minus_b), v_leak=p.v_leak,
                   v_th=getattr(p, "v_th", torch.zeros(())), v_reset=getattr(p, "v_reset", torch.zeros(())))

    def to(self, like: torch.Tensor) -> Constants:
        return Constants(*(t.to(like.device) for t in (self.a, self.minus_b, self.v_leak, self.v_th, self.v_reset)))


def _superspike(delta: torch.Tensor) -> torch.Tensor:
    """SuperSpike's surrogate derivative as Norse 1.1.0 computes it: ``1 / (|x| + 1)**2``."""
    return 1.0 / (torch.abs(delta) + 1.0).pow(2)


def _backward_spiking(grad_z: torch.Tensor, u: torch.Tensor, c: Constants, current: bool) -> torch.Tensor:
    grad_x = torch.empty_like(u)
    carry_v = torch.zeros_like(u[0])  # dL/dv of the new voltage, from later steps
    carry_j = torch.zeros_like(u[0])  # dL/dj of the next step (its current jump)
    one_minus_a, one_minus_b = 1 - c.a, 1 + c.minus_b
    for t in range(u.shape[0] - 1, -1, -1):
        delta = u[t] - c.v_th
        z = (delta > 0).to(u.dtype)
        d = (grad_z[t] + carry_v * (c.v_reset - u[t])) * _superspike(delta) + carry_v * (1 - z)
        if current:
            carry_j = c.a * d + one_minus_b * carry_j
            grad_x[t] = carry_j
        else:
            grad_x[t] = c.a * d
        carry_v = one_minus_a * d
    return grad_x


class _LIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, c: Constants, current: bool) -> torch.Tensor:
        v, i = c.v_leak, torch.zeros_like(x[0])
        u_all = torch.empty_like(x)
        z_all = torch.empty_like(x)
        for t in range(x.shape[0]):
            if current:
                j = i + x[t]
                u = v + c.a * ((c.v_leak - v) + j)
                i = j + c.minus_b * j
            else:
                u = v + c.a * (x[t] + c.v_leak - v)
            z = torch.where(u - c.v_th <= 0, 0.0, 1.0).to(x.dtype)
            v = (1 - z) * u + z * c.v_reset
            u_all[t] = u
            z_all[t] = z
        ctx.save_for_backward(u_all)
        ctx.constants, ctx.current = c, current
        return z_all

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor):
        (u,) = ctx.saved_tensors
        return _backward_spiking(grad_z, u, ctx.constants, ctx.current), None, None


class _LI(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, c: Constants) -> torch.Tensor:
        v, i = c.v_leak, torch.zeros_like(x[0])
        out = torch.empty_like(x)
        for t in range(x.shape[0]):
            j = i + x[t]
            v = v + c.a * ((c.v_leak - v) + j)
            i = j + c.minus_b * j
            out[t] = v
        ctx.constants = c
        return out

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        c = ctx.constants
        grad_x = torch.empty_like(grad_y)
        carry_v = torch.zeros_like(grad_y[0])
        carry_j = torch.zeros_like(grad_y[0])
        one_minus_a, one_minus_b = 1 - c.a, 1 + c.minus_b
        for t in range(grad_y.shape[0] - 1, -1, -1):
            d = grad_y[t] + carry_v
            carry_j = c.a * d + one_minus_b * carry_j
            grad_x[t] = carry_j
            carry_v = one_minus_a * d
        return grad_x, None


def lif_multistep(x: torch.Tensor, cell) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a Norse ``LIFCell`` driven by currents ``x`` ``[T, ...]`` from its initial state."""
    return _LIF.apply(x, Constants.of(cell).to(x), True)


def lifbox_multistep(x: torch.Tensor, cell) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a Norse ``LIFBoxCell`` driven by ``x`` ``[T, ...]`` from its initial state."""
    return _LIF.apply(x, Constants.of(cell).to(x), False)


def li_multistep(x: torch.Tensor, cell) -> torch.Tensor:
    """Voltages ``[T, ...]`` of a Norse ``LICell`` (the readout) driven by ``x`` ``[T, ...]``."""
    return _LI.apply(x, Constants.of(cell).to(x))


Kernel = Callable[[torch.Tensor, object], torch.Tensor]

# (Norse cell class name, surrogate method or None for a non-spiking cell) -> multi-step kernel
KERNELS: dict[tuple[str, str | None], Kernel] = {
    ("LIFCell", "super"): lif_multistep,
    ("LIFBoxCell", "super"): lifbox_multistep,
    ("LICell", None): li_multistep,
}


def kernels_enabled() -> bool:
    return os.environ.get(KERNEL_ENV, "fused") != "norse"


def kernel_for(cell) -> Kernel | None:
    """The multi-step kernel for a Norse cell, or None (run Norse's cell step by step)."""
    if not kernels_enabled():
        return None
    method = getattr(cell.p, "method", None)
    return KERNELS.get((type(cell).__name__, method))


def describe(cell) -> str:
    """What runs a population: ``fused torch`` or ``norse per-step``."""
    return "fused torch (hand-written backward)" if kernel_for(cell) is not None else "norse per-step"
