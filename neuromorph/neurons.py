"""Multi-step neuron kernels: a population's recurrence over all T steps in one autograd function.

Norse's cells (``LIFCell``, ``LIFBoxCell``, ``LICell``) stay the definition and the reference: a kernel here runs the
same floating-point operations in the same order (so its spikes and voltages are identical, bit for bit), with no
autograd graph in the forward pass and a hand-written backward through time. It saves the pre-reset voltage ``u`` of
every step for the backward pass, beside the spikes it returns.

Per step, with ``a = dt*tau_mem_inv`` and ``b = dt*tau_syn_inv`` (DESIGN.md section 3; ``v0 = v_leak``, ``i0 = 0``)::

    LIF     j = i + x;  u = v + a*((v_leak - v) + j);  i = j + (-b)*j;  z = H(u - v_th);  v = (1 - z)*u + z*v_reset
    LIFBox  u = v + a*(x + v_leak - v);  z = H(u - v_th);  v = (1 - z)*u + z*v_reset
    LI      j = i + x;  v = v + a*((v_leak - v) + j);  i = j + (-b)*j;  output v

Backward, in reverse time, with ``s = 1/(|u - v_th| + 1)**2`` (Norse's SuperSpike; it ignores alpha), ``gz`` the
gradient of the spikes and ``G`` the gradient reaching this step's new voltage from the future::

    D  = (gz + G*(v_reset - u))*s + G*(1 - z)      (LIF, LIFBox: dL/du)
    D  = gy + G                                    (LI: dL/dv, gy the gradient of the output)
    gj = a*D + (1 - b)*gj_next;  gx = gj;  G_prev = (1 - a)*D    (LIFBox, no current: gx = a*D)

Both directions work in place in a few buffers, block by block of :data:`CHUNK` neurons over all T steps. On a CPU
the large populations stay memory-bound (a step is a dozen passes over its neurons): only a compiled kernel that
fuses the passes would go further.

The kernel is chosen per population by :func:`kernel_for` from :data:`KERNELS` (cell and surrogate; today the
``super`` surrogate, Norse's default); anything else runs Norse's cell step by step. ``NEUROMORPH_NEURON_KERNEL=norse``
turns the kernels off (the reference), and :func:`describe` says what runs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from neuromorph.errors import NeuromorphError

KERNEL_ENV = "NEUROMORPH_NEURON_KERNEL"
KERNEL_SETTINGS = ("auto", "cpp", "triton", "torch", "norse")


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


CHUNK = 131072  # neurons per block of the time loop (measured: smaller blocks cost more in op overhead than they save)


def _blocks(n: int):
    """Slices of ``n`` neurons that the time loop runs one after the other (the recurrence is per neuron)."""
    return [slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]


def _buffers(count: int, like: torch.Tensor, n: int) -> list[torch.Tensor]:
    return [torch.empty(min(n, CHUNK), dtype=like.dtype, device=like.device) for _ in range(count)]


def _lif_forward(x: torch.Tensor, u_all: torch.Tensor, z_all: torch.Tensor, c: Constants, current: bool) -> None:
    """Norse's operations in Norse's order on ``x`` ``[T, N]`` (products and sums taken in place: IEEE + and *
    commute exactly); writes the pre-reset voltages and the spikes."""
    steps, n = x.shape
    buffers = _buffers(4, x, n)
    mask = torch.empty(min(n, CHUNK), dtype=torch.bool, device=x.device)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    for block in _blocks(n):
        k = block.stop - block.start
        v, i, j, tmp = (b[:k] for b in buffers)
        at_or_below = mask[:k]
        v.fill_(c.v_leak)
        i.zero_()
        for t in range(steps):
            u, z = u_all[t, block], z_all[t, block]
            if current:
                torch.add(i, x[t, block], out=j)  # j = i + x
                torch.sub(c.v_leak, v, out=tmp).add_(j).mul_(c.a)  # a * ((v_leak - v) + j)
                torch.add(v, tmp, out=u)
                torch.mul(j, c.minus_b, out=i).add_(j)  # i = j + (-b)*j
            else:
                torch.add(x[t, block], c.v_leak, out=tmp).sub_(v).mul_(c.a)  # a * (x + v_leak - v)
                torch.add(v, tmp, out=u)
            torch.le(u, c.v_th, out=at_or_below)  # Norse: H(u - v_th) is 0 where u - v_th <= 0, else 1
            z.copy_(at_or_below.logical_not_())
            torch.sub(one, z, out=tmp).mul_(u)  # (1 - z) * u
            torch.mul(z, c.v_reset, out=v).add_(tmp)  # + z * v_reset


def _lif_backward(grad_z: torch.Tensor, u_all: torch.Tensor, z_all: torch.Tensor, c: Constants,
                  current: bool) -> torch.Tensor:
    """dL/dx ``[T, N]`` for the spikes' gradient ``grad_z`` ``[T, N]``."""
    steps, n = u_all.shape
    grad_x = torch.empty_like(u_all)
    a, v_th, v_reset = float(c.a), float(c.v_th), float(c.v_reset)
    one_minus_a, one_minus_b = 1.0 - a, 1.0 + float(c.minus_b)
    buffers = _buffers(4, u_all, n)
    for block in _blocks(n):
        k = block.stop - block.start
        carry_v, carry_j, d, s = (b[:k] for b in buffers)  # carry_v: dL/dv of the new voltage, from later steps;
        carry_v.zero_()  # carry_j: dL/dj of the next step's current jump
        carry_j.zero_()
        for t in range(steps - 1, -1, -1):
            u = u_all[t, block]
            torch.sub(u, v_th, out=s).abs_().add_(1.0).square_().reciprocal_()  # SuperSpike: 1/(|u - v_th| + 1)**2
            torch.add(u, -v_reset, out=d).neg_()  # v_reset - u
            d.mul_(carry_v).add_(grad_z[t, block]).mul_(s)  # (gz + G*(v_reset - u)) * s
            d.add_(carry_v).sub_(carry_v.mul_(z_all[t, block]))  # + G*(1 - z)
            if current:
                carry_j.mul_(one_minus_b).add_(d, alpha=a)
                grad_x[t, block].copy_(carry_j)
            else:
                torch.mul(d, a, out=grad_x[t, block])
            torch.mul(d, one_minus_a, out=carry_v)
    return grad_x


_EXTENSION: dict[str, object] = {}  # "module" or "error", once per process
_TRITON: dict[str, object] = {}  # the Triton kernels module (or None) and why not, once per process
SOURCE = Path(__file__).with_name("csrc") / "neurons.cpp"


def _vector_flags() -> list[str]:
    """``-mavx2`` on an x86-64 CPU that has AVX2 (four doubles or eight floats per instruction instead of SSE2's
    two and four; the same operations on each element, so the same values): the loops are memory- and
    vector-bound, measured 1.3x (CUBA forward) to 1.7x (its backward) faster. The flag is part of the build's name
    (:func:`_extension_name`), so a machine without AVX2 never loads such a build from a shared cache."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return []
    return ["-mavx2"] if "avx2" in flags else []


BASE_CFLAGS = ("-O3", "-ffp-contract=off", "-fno-trapping-math")  # no fused multiply-add (it would round once
# where Norse rounds twice); -fno-trapping-math lets the compiler vectorize the threshold compare (no value changes)


@functools.cache
def cflags() -> list[str]:
    """The build's flags: :data:`BASE_CFLAGS` and the CPU's vector flags, looked up when the kernels are first
    built or loaded (not on import)."""
    return [*BASE_CFLAGS, *_vector_flags()]


def compiled_extension():
    """The C++ kernels (``neuromorph/csrc/neurons.cpp``), built by torch's extension loader the first time (about
    40 s; ``make venv`` builds them) and loaded from its cache after; None where no compiler is available."""
    if not _EXTENSION:
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime is found"
        tools = os.path.dirname(sys.executable)  # the environment's own ninja (requirements/base.txt)
        if tools not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join(filter(None, [tools, os.environ.get("PATH")]))
        try:
            from torch.utils.cpp_extension import load

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _EXTENSION["module"] = load(_extension_name(), [str(SOURCE)], extra_cflags=cflags(), verbose=False)
        except Exception as error:  # no compiler, no headers, a failed build: fall back to pure torch, and say why
            _EXTENSION["module"] = None
            lines = str(error).strip().splitlines()
            _EXTENSION["error"] = f"{type(error).__name__}: {lines[-1] if lines else ''}"
    return _EXTENSION["module"]


def _extension_name() -> str:
    """The build's name, from the source and flags: checkouts with the same kernels share one build, and a changed
    kernel never loads an old one (torch's loader keys its cache folder by this name)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(cflags()).encode()).hexdigest()[:12]
    return f"neuromorph_neurons_{digest}"


def build_error() -> str | None:
    """Why the compiled kernels are not available (None when they are, or were not tried)."""
    return _EXTENSION.get("error")


def compiled_for(flat: torch.Tensor):
    """The compiled kernels for this input (C++ or Triton, one interface), or None (pure torch)."""
    chosen = backend(flat.device)
    if chosen == "cpp" and flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        return compiled_extension()
    if chosen == "triton" and flat.dtype == torch.float32:
        return triton_kernels()
    return None


def triton_kernels():
    """:mod:`neuromorph.triton_neurons`, or None where Triton is not installed or does not import."""
    if "module" not in _TRITON:
        try:
            import neuromorph.triton_neurons as module
        except Exception as error:  # noqa: BLE001 - no triton, or one that cannot build for this machine
            module = None
            _TRITON["error"] = f"{type(error).__name__}: {str(error).strip()[:120]}"
        _TRITON["module"] = module
    return _TRITON["module"]


def _count_idle() -> bool:
    """Count idle steps in this forward pass: outside autograd (evaluation and the energy report, which prices them),
    not in a training step (they cost about a third more forward time there, for nothing)."""
    return not torch.is_grad_enabled()


def neuron_contiguous(flat: torch.Tensor) -> torch.Tensor:
    """``[T, N]`` with contiguous neurons and a time stride of N or 0 (a time-constant input stays unexpanded)."""
    if flat.stride(1) == 1 and flat.stride(0) in (0, flat.shape[1]):
        return flat
    return flat.contiguous()


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``[T, ...]`` as ``[T, N]`` (a view where possible: a time-constant input keeps its zero stride)."""
    return x.reshape(x.shape[0], -1)


class _LIF(torch.autograd.Function):
    """Spikes ``[T, ...]`` and their sums over time ``[...]`` (the counts an activity penalty reads). The counts'
    gradient is added to every step's spike gradient inside the backward pass, as the autograd graph of
    ``z.sum(0)`` would add it, so a penalty on the counts costs no extra pass over the spikes."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, c: Constants, current: bool) -> tuple[torch.Tensor, torch.Tensor]:
        flat = _flat(x)
        compiled = compiled_for(flat)
        if compiled is not None:
            u_all, z_all, counts, idle = compiled.lif_forward(
                neuron_contiguous(flat), float(c.a), float(c.minus_b), float(c.v_leak), float(c.v_th),
                float(c.v_reset), current, _count_idle())
            idle = idle if idle is not None and idle.numel() else None
        else:
            u_all = torch.empty(flat.shape, dtype=x.dtype, device=x.device)
            z_all = torch.empty_like(u_all)
            _lif_forward(flat, u_all, z_all, c, current)
            counts, idle = z_all.sum(dim=0), None
        ctx.save_for_backward(u_all, z_all)
        ctx.constants, ctx.current, ctx.compiled, ctx.shape = c, current, compiled, x.shape
        ctx.set_materialize_grads(False)
        idle = x.new_empty(0) if idle is None else idle.view(x.shape[1:])  # empty: not counted by this backend
        ctx.mark_non_differentiable(idle)
        return z_all.view(x.shape), counts.view(x.shape[1:]), idle

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor | None, grad_counts: torch.Tensor | None, _grad_idle=None):
        u, z = ctx.saved_tensors
        c = ctx.constants
        flat = torch.zeros_like(u) if grad_z is None else _flat(grad_z.contiguous())
        counts = None if grad_counts is None else grad_counts.contiguous().reshape(-1)
        if ctx.compiled is not None:
            grad = ctx.compiled.lif_backward(flat, counts, u, float(c.a), float(c.minus_b), float(c.v_th),
                                             float(c.v_reset), ctx.current)
        else:
            grad = _lif_backward(flat if counts is None else flat + counts, u, z, c, ctx.current)
        return grad.view(ctx.shape), None, None


class _LI(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, c: Constants) -> tuple[torch.Tensor, torch.Tensor]:
        flat = _flat(x)
        ctx.constants = c
        ctx.compiled = compiled = compiled_for(flat)
        if compiled is not None:
            out, idle = compiled.li_forward(neuron_contiguous(flat), float(c.a), float(c.minus_b), float(c.v_leak),
                                            _count_idle())
            idle = x.new_empty(0) if idle is None or idle.numel() == 0 else idle.view(x.shape[1:])
            ctx.mark_non_differentiable(idle)
            return out.view(x.shape), idle
        steps, n = flat.shape
        out = torch.empty(flat.shape, dtype=x.dtype, device=x.device)
        buffers = _buffers(4, x, n)
        for block in _blocks(n):
            k = block.stop - block.start
            v, i, j, tmp = (b[:k] for b in buffers)
            v.fill_(c.v_leak)
            i.zero_()
            for t in range(steps):
                torch.add(i, flat[t, block], out=j)
                torch.sub(c.v_leak, v, out=tmp).add_(j).mul_(c.a)
                v = torch.add(v, tmp, out=out[t, block])
                torch.mul(j, c.minus_b, out=i).add_(j)
        idle = x.new_empty(0)  # not counted by the pure-torch kernel
        ctx.mark_non_differentiable(idle)
        return out.view(x.shape), idle

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor, _grad_idle=None):
        c = ctx.constants
        flat = _flat(grad_y.contiguous())
        if ctx.compiled is not None:
            return ctx.compiled.li_backward(flat, float(c.a), float(c.minus_b)).view(grad_y.shape), None
        steps, n = flat.shape
        grad_x = torch.empty_like(flat)
        a = float(c.a)
        one_minus_a, one_minus_b = 1.0 - a, 1.0 + float(c.minus_b)
        buffers = _buffers(2, flat, n)
        for block in _blocks(n):
            k = block.stop - block.start
            d, carry_j = (b[:k] for b in buffers)  # d: dL/dv of this step's voltage (the output and all after it)
            d.zero_()
            carry_j.zero_()
            for t in range(steps - 1, -1, -1):
                d.mul_(one_minus_a).add_(flat[t, block])
                carry_j.mul_(one_minus_b).add_(d, alpha=a)
                grad_x[t, block].copy_(carry_j)
        return grad_x.view(grad_y.shape), None


def _counted(idle: torch.Tensor) -> torch.Tensor | None:
    return None if idle.numel() == 0 else idle


def lif_multistep(x: torch.Tensor, cell, with_counts: bool = False):
    """Spikes ``[T, ...]`` of a Norse ``LIFCell`` driven by currents ``x`` ``[T, ...]`` from its initial state;
    with ``with_counts``, ``(spikes, counts, idle)``: the counts ``[...]`` are the spikes summed over time,
    differentiable (a penalty on them gets its gradient inside the kernel's backward pass); ``idle`` ``[...]`` each
    neuron's idle steps (no input and its state unchanged), None where the backend does not count them."""
    spikes, counts, idle = _LIF.apply(x, Constants.of(cell).to(x), True)
    return (spikes, counts, _counted(idle)) if with_counts else spikes


def lifbox_multistep(x: torch.Tensor, cell, with_counts: bool = False):
    """Spikes ``[T, ...]`` of a Norse ``LIFBoxCell`` driven by ``x`` ``[T, ...]`` from its initial state (and the
    counts and idle steps, as :func:`lif_multistep`)."""
    spikes, counts, idle = _LIF.apply(x, Constants.of(cell).to(x), False)
    return (spikes, counts, _counted(idle)) if with_counts else spikes


def li_multistep(x: torch.Tensor, cell, with_counts: bool = False):
    """Voltages ``[T, ...]`` of a Norse ``LICell`` (the readout) driven by ``x`` ``[T, ...]`` (``(voltages, None,
    idle)`` with ``with_counts``: a readout does not spike)."""
    voltages, idle = _LI.apply(x, Constants.of(cell).to(x))
    return (voltages, None, _counted(idle)) if with_counts else voltages


# (currents [T, ...], cell, with_counts) -> spikes or voltages [T, ...], or (that, counts or None) with_counts
Kernel = Callable[..., object]

# (Norse cell class name, surrogate method or None for a non-spiking cell) -> multi-step kernel
KERNELS: dict[tuple[str, str | None], Kernel] = {
    ("LIFCell", "super"): lif_multistep,
    ("LIFBoxCell", "super"): lifbox_multistep,
    ("LICell", None): li_multistep,
}


def kernel_setting() -> str:
    """``NEUROMORPH_NEURON_KERNEL``: ``auto`` (the default: on a CPU the compiled C++ kernel where it is built, on a
    GPU the Triton kernel where Triton imports, else pure torch), ``cpp``, ``triton`` (also on CPU tensors under
    ``TRITON_INTERPRET=1``, as the tests run it), ``torch`` or ``norse`` (Norse's cells step by step, the
    reference). ``fused`` is read as ``auto``."""
    value = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    value = "auto" if value == "fused" else value
    if value not in KERNEL_SETTINGS:
        raise NeuromorphError(f"{KERNEL_ENV}={value!r}: expected one of {', '.join(KERNEL_SETTINGS)}")
    return value


def kernels_enabled() -> bool:
    return kernel_setting() != "norse"


def kernel_for(cell) -> Kernel | None:
    """The multi-step kernel for a Norse cell, or None (run Norse's cell step by step)."""
    if not kernels_enabled():
        return None
    method = getattr(cell.p, "method", None)
    return KERNELS.get((type(cell).__name__, method))


def backend(device: torch.device | str = "cpu") -> str:
    """What runs a fused population on ``device``: ``cpp`` (the compiled kernel), ``triton`` or ``torch`` (the
    pure-torch one). ``cpp`` is chosen on a CPU when the setting allows it and the extension builds (or is built
    already), ``triton`` on a GPU when Triton imports; an explicit setting that cannot run is one error line."""
    setting = kernel_setting()
    kind = torch.device(device).type
    if kind == "cpu" and setting in ("auto", "cpp") and compiled_extension() is not None:
        return "cpp"
    if setting == "cpp":
        raise NeuromorphError(f"{KERNEL_ENV}=cpp: the compiled kernel is not available here "
                              f"({build_error() or 'not a CPU tensor'})")
    if ((kind == "cuda" and setting == "auto") or setting == "triton") and triton_kernels() is not None:
        if kind == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
            raise NeuromorphError(f"{KERNEL_ENV}=triton on a CPU needs TRITON_INTERPRET=1 (Triton's interpreter)")
        return "triton"
    if setting == "triton":
        raise NeuromorphError(f"{KERNEL_ENV}=triton: Triton is not available here "
                              f"({_TRITON.get('error', 'it did not import')})")
    return "torch"


def describe(cell, device: torch.device | str = "cpu") -> str:
    """What runs a population: the fused kernel's backend, or ``norse per-step``."""
    if kernel_for(cell) is None:
        return "norse per-step"
    return {"cpp": "fused C++ (compiled, hand-written backward)",
            "triton": "fused Triton (hand-written backward)",
            "torch": "fused torch (hand-written backward)"}[backend(device)]


def main(argv: list[str] | None = None) -> int:
    """``python -m neuromorph.neurons build``: build the compiled kernels now (``make venv`` does), and say which
    backend a CPU population gets."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m neuromorph.neurons build", file=sys.stderr)
        return 2
    module = compiled_extension()
    if module is None:
        print(f"neuromorph: compiled neuron kernels not built ({build_error()}); the pure-torch kernels will run",
              file=sys.stderr)
        return 0
    print(f"neuromorph: compiled neuron kernels ready ({module.__file__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
