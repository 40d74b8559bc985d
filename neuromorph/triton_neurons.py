"""The multi-step neuron kernels in Triton, for tensors on a GPU: the same operations in the same order as the C++
kernels (``neuromorph/csrc/neurons.cpp``) and the pure-torch ones of :mod:`neuromorph.neurons`, with the same
signatures, so :mod:`neuromorph.neurons` runs either through one interface.

Each program holds a block of neurons' state in registers and runs the whole time loop over it: one read of the
input and one write of the outputs per step. Kernels launch with ``enable_fp_fusion=False``: a fused multiply-add
rounds once where Norse rounds twice, and would change the last bit. With ``TRITON_INTERPRET=1`` (set before this
module is imported) Triton runs them on CPU tensors, which is how the suite tests them on a machine without a GPU.

Imported only when a population runs on the Triton backend (:func:`neuromorph.neurons.backend`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 256  # neurons per program


@triton.jit
def _lif_forward_kernel(x_ptr, x_step, u_ptr, z_ptr, counts_ptr, n, steps, a, minus_b, v_leak, v_th, v_reset,
                        CURRENT: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    v = tl.zeros((BLOCK_SIZE,), dtype=tl.float32) + v_leak
    cur = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    count = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for t in range(steps):
        x = tl.load(x_ptr + t * x_step + offsets, mask=mask, other=0.0)
        if CURRENT:
            j = cur + x                                  # j = i + x
            u = v + ((v_leak - v) + j) * a               # v + a * ((v_leak - v) + j)
            cur = j * minus_b + j                        # i = j + (-b)*j
        else:
            u = v + ((x + v_leak) - v) * a               # v + a * (x + v_leak - v)
        z = 1.0 - (u <= v_th).to(tl.float32)             # H(u - v_th): 0 where u - v_th <= 0, else 1
        tl.store(u_ptr + t * n + offsets, u, mask=mask)
        tl.store(z_ptr + t * n + offsets, z, mask=mask)
        count = count + z
        v = z * v_reset + (1.0 - z) * u                  # (1 - z)*u + z*v_reset
    tl.store(counts_ptr + offsets, count, mask=mask)


@triton.jit
def _lif_backward_kernel(gz_ptr, gc_ptr, u_ptr, gx_ptr, n, steps, a, one_minus_a, one_minus_b, v_th, v_reset,
                         CURRENT: tl.constexpr, COUNTS: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    carry_v = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)  # dL/dv of the new voltage, from later steps
    carry_j = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)  # dL/dj of the next step's current jump
    if COUNTS:
        gc = tl.load(gc_ptr + offsets, mask=mask, other=0.0)
    for step in range(steps):
        t = steps - 1 - step
        u = tl.load(u_ptr + t * n + offsets, mask=mask, other=0.0)
        gz = tl.load(gz_ptr + t * n + offsets, mask=mask, other=0.0)
        if COUNTS:
            gz = gz + gc                                 # the step's and the counts' gradient
        s = tl.abs(u - v_th) + 1.0
        s = 1.0 / (s * s)                                # SuperSpike: 1/(|u - v_th| + 1)**2
        g = carry_v
        d = (-(u + (-v_reset)) * g + gz) * s             # (gz + G*(v_reset - u)) * s
        z = 1.0 - (u <= v_th).to(tl.float32)
        d = (d + g) - g * z                              # + G*(1 - z)
        if CURRENT:
            carry_j = carry_j * one_minus_b + a * d
            tl.store(gx_ptr + t * n + offsets, carry_j, mask=mask)
        else:
            tl.store(gx_ptr + t * n + offsets, d * a, mask=mask)
        carry_v = d * one_minus_a


@triton.jit
def _li_forward_kernel(x_ptr, x_step, out_ptr, n, steps, a, minus_b, v_leak, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    v = tl.zeros((BLOCK_SIZE,), dtype=tl.float32) + v_leak
    cur = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for t in range(steps):
        x = tl.load(x_ptr + t * x_step + offsets, mask=mask, other=0.0)
        j = cur + x
        v = v + ((v_leak - v) + j) * a
        tl.store(out_ptr + t * n + offsets, v, mask=mask)
        cur = j * minus_b + j


@triton.jit
def _li_backward_kernel(gy_ptr, gx_ptr, n, steps, a, one_minus_a, one_minus_b, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    d = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    carry_j = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    for step in range(steps):
        t = steps - 1 - step
        gy = tl.load(gy_ptr + t * n + offsets, mask=mask, other=0.0)
        d = d * one_minus_a + gy
        carry_j = carry_j * one_minus_b + a * d
        tl.store(gx_ptr + t * n + offsets, carry_j, mask=mask)


def _check(x: torch.Tensor, name: str) -> None:
    if x.dtype != torch.float32 or x.dim() != 2 or x.stride(1) != 1:
        raise ValueError(f"{name} must be float32 [T, N] with contiguous neurons")


def _time_stride(x: torch.Tensor) -> int:
    return 0 if x.shape[0] == 1 else x.stride(0)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


_OPTIONS = {"BLOCK_SIZE": BLOCK, "enable_fp_fusion": False}


def lif_forward(x, a, minus_b, v_leak, v_th, v_reset, current, count_idle=False):
    """``(u, z, counts, None)`` as the C++ ``lif_forward`` (which also counts idle steps)."""
    _check(x, "x")
    steps, n = x.shape
    u = torch.empty((steps, n), dtype=x.dtype, device=x.device)
    z = torch.empty_like(u)
    counts = torch.empty(n, dtype=x.dtype, device=x.device)
    _lif_forward_kernel[_grid(n)](x, _time_stride(x), u, z, counts, n, steps, a, minus_b, v_leak, v_th, v_reset,
                                  CURRENT=bool(current), **_OPTIONS)
    return u, z, counts, None  # idle steps: not counted here (the energy report counts them itself)


def lif_backward(grad_z, grad_counts, u, a, minus_b, v_th, v_reset, current):
    """dL/dx as the C++ ``lif_backward`` (``grad_counts`` None when the counts were not used)."""
    steps, n = u.shape
    grad_x = torch.empty_like(u)
    counts = grad_counts if grad_counts is not None else u  # a placeholder pointer, never read
    _lif_backward_kernel[_grid(n)](grad_z.contiguous(), counts, u, grad_x, n, steps, a, 1.0 - a, 1.0 + minus_b,
                                   v_th, v_reset, CURRENT=bool(current), COUNTS=grad_counts is not None, **_OPTIONS)
    return grad_x


def li_forward(x, a, minus_b, v_leak, count_idle=False):
    _check(x, "x")
    steps, n = x.shape
    out = torch.empty((steps, n), dtype=x.dtype, device=x.device)
    _li_forward_kernel[_grid(n)](x, _time_stride(x), out, n, steps, a, minus_b, v_leak, **_OPTIONS)
    return out, None


def li_backward(grad_y, a, minus_b):
    steps, n = grad_y.shape
    grad_x = torch.empty_like(grad_y)
    _li_backward_kernel[_grid(n)](grad_y.contiguous(), grad_x, n, steps, a, 1.0 - a, 1.0 + minus_b, **_OPTIONS)
    return grad_x
