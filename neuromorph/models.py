"""Spiking networks built from Norse cells, from a :class:`~neuromorph.spec.ModelSpec`.

Tensors are time-major ``[T, B, ...]``. Stateless synaptic layers (Linear, Conv2d) and pooling run on all T steps
at once with time folded into the batch; only the neuron recurrences (Norse ``LIFCell``/``LIFBoxCell`` and the
``LICell`` readout) loop over time. Each hidden layer's spikes are returned for the penalty and for reports.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

with warnings.catch_warnings():  # norse 1.1.0 calls torch.jit.script at import, which torch 2.14 deprecates
    warnings.simplefilter("ignore", FutureWarning)
    from norse.torch import LICell, LIFBoxCell, LIFCell
    from norse.torch.functional.leaky_integrator import LIParameters
    from norse.torch.functional.lif import LIFParameters
    from norse.torch.functional.lif_box import LIFBoxParameters

from hw_models.fanout import model_fan_outs
from neuromorph.errors import NeuromorphError
from neuromorph.neurons import kernel_for
from neuromorph.outputs import SNNOutput, reduce_readout
from neuromorph.spec import (
    FIXED_POINT_ARITHMETIC,
    FLOAT_ARITHMETIC,
    Conv,
    Dense,
    Flatten,
    Layer,
    ModelSpec,
    Pool,
    unsupported_layer,
)
from neuromorph.structure import INPUT, blocks, spike_sources

__all__ = ["ARITHMETIC", "NEURON_CELLS", "TORCH_MODULES", "SNNOutput", "SpikingNet", "build_model",
           "calibrate_firing", "fold_batch_norm", "reduce_readout", "register_arithmetic"]


class _WindowPool(torch.autograd.Function):
    """``avg_pool2d(x, k) * scale`` (non-overlapping ``k x k`` windows) whose backward spreads each output's
    gradient over its window by repeating it, where torch's ``avg_pool2d_backward`` zero-fills the input's gradient
    and scatters into it (on the ``[T*B, C, H, W]`` maps of a time-folded CNN: 6.6 against 14.5 ms measured). The
    same values: each input of a window gets ``grad * scale / k**2`` (as autograd computes it through the product
    and the pool; inputs past the last whole window get zero)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: int, scale: float) -> torch.Tensor:
        ctx.k, ctx.scale, ctx.in_shape = k, scale, x.shape
        out = nn.functional.avg_pool2d(x, k)
        return out if scale == 1 else out * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        k = ctx.k
        per_input = (grad if ctx.scale == 1 else grad * ctx.scale) / (k * k)
        rows, cols = per_input.shape[-2:]
        spread = per_input.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)  # measured the fastest copy
        height, width = ctx.in_shape[-2:]
        if (rows * k, cols * k) != (height, width):
            spread = nn.functional.pad(spread, (0, width - cols * k, 0, height - rows * k))
        return spread, None, None


class Pool2d(nn.Module):
    """A ``Pool`` layer: average (``scale`` 1) or sum (``scale`` k**2) over non-overlapping ``k x k`` windows, with
    :class:`_WindowPool`'s backward."""

    def __init__(self, kernel_size: int, scale: float = 1.0):
        super().__init__()
        self.kernel_size, self.scale = kernel_size, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _WindowPool.apply(x, self.kernel_size, self.scale)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, scale={self.scale:g}"


def _pool_module(layer: Pool, in_shape: tuple[int, ...]) -> nn.Module:
    return Pool2d(layer.kernel_size, 1.0 if layer.mode == "avg" else float(layer.kernel_size**2))


# The torch backend's table: layer class -> (layer, input shape without batch) -> module on [N, *in_shape].
TORCH_MODULES: dict[type, Callable[[Layer, tuple[int, ...]], nn.Module]] = {
    Dense: lambda layer, in_shape: nn.Linear(in_shape[0], layer.out_features, bias=layer.bias),
    Conv: lambda layer, in_shape: nn.Conv2d(in_shape[0], layer.out_channels, layer.kernel_size, layer.stride,
                                            layer.padding, bias=layer.bias),
    Pool: _pool_module,
    Flatten: lambda layer, in_shape: nn.Flatten(start_dim=1),
}


class BatchNormSynapse(nn.Module):
    """Synapses, then BatchNorm of their output current per output channel (``Dense``/``Conv`` with
    ``batch_norm=True``). With time folded into the batch, the statistics run over time steps, batch (and pixels):
    threshold-dependent BN as in Zheng et al. 2021 (tdBN), without its threshold factor. Exporters and the cost
    model never see it: :func:`fold_batch_norm` turns it into plain synapses with a bias."""

    def __init__(self, synapse: nn.Module, channels: int, spatial: bool):
        super().__init__()
        self.synapse = synapse
        self.norm = nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.synapse(x))


def torch_module(layer: Layer, in_shape: tuple[int, ...]) -> nn.Module:
    """The torch module of one spec layer."""
    make = TORCH_MODULES.get(type(layer))
    if make is None:
        raise unsupported_layer(layer, "the torch model")
    module = make(layer, tuple(in_shape))
    if getattr(layer, "batch_norm", False):
        return BatchNormSynapse(module, module.weight.shape[0], spatial=isinstance(layer, Conv))
    return module


def gain_parameter(synapse: nn.Module) -> torch.Tensor:
    """The parameter that scales a synaptic layer's output current: BatchNorm's scale where there is one (the
    weights' scale is normalized away), else the weights."""
    return synapse.norm.weight if isinstance(synapse, BatchNormSynapse) else synapse.weight


def has_batch_norm(model: SpikingNet) -> bool:
    return any(isinstance(block.synapse, BatchNormSynapse) for block in model.blocks)


@torch.no_grad()
def fold_batch_norm(model: SpikingNet) -> SpikingNet:
    """The same network with each BatchNorm folded into its synapses (``model`` itself where there is none).

    In inference BatchNorm is affine per output channel c: ``y_c = g_c (x_c - mu_c) / sqrt(var_c + eps) + beta_c``
    with the running statistics. With ``k_c = g_c / sqrt(var_c + eps)``, ``W'_c = k_c W_c`` and
    ``b'_c = beta_c + k_c (b_c - mu_c)`` give the same current (to float rounding), so the folded layer is a plain
    ``Dense``/``Conv`` with ``bias=True``. That bias is what every backend then sees: the cost model, NIR (as the
    Affine/Conv2d bias), and the chip exporters, which refuse a bias on a chip layer (it has no exact Loihi form)
    and accept it on the host-computed first layer."""
    from dataclasses import replace

    if not has_batch_norm(model):
        return model
    spec = model.spec
    layers = tuple(replace(layer, batch_norm=False, bias=True) if getattr(layer, "batch_norm", False) else layer
                   for layer in spec.layers)
    folded = build_model(replace(spec, layers=layers)).to(next(model.parameters()).device)
    state = {}
    for number, block in enumerate(model.blocks):
        synapse = block.synapse
        if isinstance(synapse, BatchNormSynapse):
            norm, inner = synapse.norm, synapse.synapse
            k = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            weight = inner.weight.double() * k.reshape(-1, *([1] * (inner.weight.dim() - 1)))
            bias = inner.bias.double() if inner.bias is not None else torch.zeros_like(k)
            state[f"blocks.{number}.synapse.weight"] = weight.to(inner.weight.dtype)
            state[f"blocks.{number}.synapse.bias"] = (norm.bias.double() + k * (bias - norm.running_mean.double())
                                                      ).to(inner.weight.dtype)
        else:
            for name, tensor in synapse.state_dict().items():
                state[f"blocks.{number}.synapse.{name}"] = tensor
    for name, tensor in folded.state_dict().items():
        if ".synapse." not in name:
            state[name] = tensor
    folded.load_state_dict(state)
    return folded.train(model.training)


def _lif_cell(spec: ModelSpec) -> nn.Module:
    n = spec.neuron
    p = LIFParameters(
        tau_syn_inv=torch.as_tensor(n.tau_syn_inv), tau_mem_inv=torch.as_tensor(n.tau_mem_inv),
        v_leak=torch.as_tensor(n.v_leak), v_th=torch.as_tensor(n.v_th), v_reset=torch.as_tensor(n.v_reset),
        method=n.surrogate, alpha=torch.as_tensor(n.alpha),
    )
    return LIFCell(p, dt=spec.dt_s)


def _lifbox_cell(spec: ModelSpec) -> nn.Module:
    n = spec.neuron
    p = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor(n.tau_mem_inv), v_leak=torch.as_tensor(n.v_leak),
        v_th=torch.as_tensor(n.v_th), v_reset=torch.as_tensor(n.v_reset), method=n.surrogate,
        alpha=torch.as_tensor(n.alpha),
    )
    return LIFBoxCell(p, dt=spec.dt_s)


# NeuronSpec.cell -> the Norse cell of a hidden population
NEURON_CELLS: dict[str, Callable[[ModelSpec], nn.Module]] = {"lif": _lif_cell, "lifbox": _lifbox_cell}


def make_cell(spec: ModelSpec) -> nn.Module:
    """The Norse cell of a hidden layer, with the spec's parameters."""
    return NEURON_CELLS[spec.neuron.cell](spec)


def make_readout(spec: ModelSpec) -> nn.Module:
    r = spec.readout
    p = LIParameters(tau_syn_inv=torch.as_tensor(r.tau_syn_inv), tau_mem_inv=torch.as_tensor(r.tau_mem_inv))
    return LICell(p, dt=spec.dt_s)


class _Block(nn.Module):
    """Pass-through layers (pool, flatten), one synaptic layer, and its neuron population."""

    def __init__(self, pre: list[nn.Module], synapse: nn.Module, neuron: nn.Module, out_shape: tuple[int, ...]):
        super().__init__()
        self.pre = nn.Sequential(*pre)
        self.synapse = synapse
        self.neuron = neuron
        self.out_shape = out_shape

    def currents(self, h: torch.Tensor) -> torch.Tensor:
        """Synaptic input ``[T, B, *out_shape]`` for input ``h`` of shape ``[T, B, ...]``, time folded in batch.

        A time-constant input (a tensor expanded over T, stride 0, as the direct encoder makes) is computed once.
        """
        steps, batch = h.shape[:2]
        if h.stride(0) == 0:
            once = self.synapse(self.pre(h[0]))
            return once.unsqueeze(0).expand(steps, *once.shape)
        out = self.synapse(self.pre(h.reshape(steps * batch, *h.shape[2:])))
        return out.reshape(steps, batch, *out.shape[1:])

    def integrate(self, currents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Run the neuron recurrence over time: spikes (or readout voltages) ``[T, B, ...]``, the spikes summed over
        time ``[B, ...]`` where the kernel computed them (None for a readout, or where Norse's cell ran), and each
        neuron's idle steps ``[B, ...]`` where the kernel counted them (None otherwise).

        A multi-step kernel (:mod:`neuromorph.neurons`: the same arithmetic in one autograd function) runs it when
        one exists for the cell; else Norse's cell, step by step (the reference)."""
        kernel = kernel_for(self.neuron)
        if kernel is not None:
            return kernel(currents, self.neuron, with_counts=True)
        state = None
        outputs = []
        # unbind, not currents[step]: indexing's backward writes each step's gradient into a zero tensor of the
        # full [T, B, ...] size (T times the memory traffic); unbind's backward stacks them once.
        for current in currents.unbind(0):
            out, state = self.neuron(current, state)
            outputs.append(out)
        return torch.stack(outputs), None, None


class SpikingNet(nn.Module):
    """A feed-forward SNN: ``[pre -> synapse -> LIF]* -> pre -> synapse -> LI readout``, one module per block of
    :func:`neuromorph.structure.blocks`.

    ``forward`` takes an encoded, time-major input ``[T, B, *input_shape]`` (see :mod:`neuromorph.encoders`) and
    computes in the arithmetic ``spec.arithmetic`` names (:data:`ARITHMETIC`): Norse float, or Loihi fixed point
    (registered by :mod:`export.loihi_exact`).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        modules = []
        for block in blocks(spec):
            shapes = [block.in_shape]
            for layer in block.pre:
                shapes.append(layer.output_shape(shapes[-1]))
            pre = [torch_module(layer, shape) for layer, shape in zip(block.pre, shapes, strict=False)]
            neuron = make_readout(spec) if block.readout else make_cell(spec)
            modules.append(_Block(pre, torch_module(block.synapse, block.synapse_in_shape), neuron, block.out_shape))
        self.blocks = nn.ModuleList(modules)
        self.sources = spike_sources(spec)
        self.records_input = bool(self.sources) and self.sources[0].name == INPUT
        for number, psi in enumerate(model_fan_outs(spec)):
            self.register_buffer(f"fan_out_{number}", psi.float(), persistent=False)

    @property
    def fan_outs(self) -> list[torch.Tensor]:
        """Exact fan-out of each spike source (same order as ``SNNOutput.spikes``)."""
        return [getattr(self, f"fan_out_{n}") for n in range(len(self.sources))]

    @property
    def synapses(self) -> list[nn.Module]:
        return [block.synapse for block in self.blocks]

    def hidden_spikes(self, out: SNNOutput) -> list[torch.Tensor]:
        """The spikes of the hidden populations (``lif1`` ...) in ``out``, without the recorded input."""
        return out.spikes[1:] if self.records_input else out.spikes

    def idle_steps(self, x: torch.Tensor, out: SNNOutput) -> list[torch.Tensor] | None:
        """Idle steps per neuron of each block's population (``[*out_shape]``, summed over the batch) in the run
        ``out`` of input ``x``: no input and a state unchanged by the step (hw_models.activity states the
        definition). None when the arithmetic cannot say."""
        idle = arithmetic(self.spec.arithmetic).idle
        return None if idle is None else idle(self, x, out)

    def forward(self, x: torch.Tensor) -> SNNOutput:
        expected = (self.spec.time_steps, *self.spec.input_shape)
        if x.dim() != len(expected) + 1 or x.shape[0] != expected[0] or tuple(x.shape[2:]) != expected[1:]:
            raise ValueError(f"expected input [T={expected[0]}, B, {', '.join(map(str, expected[1:]))}], "
                             f"got {list(x.shape)}")
        return arithmetic(self.spec.arithmetic).forward(self, x)


def norse_forward(model: SpikingNet, x: torch.Tensor) -> SNNOutput:
    """Norse float arithmetic: synaptic layers on all steps at once, the Norse cells stepped over time."""
    spikes = [x] if model.records_input else []
    counts: list[torch.Tensor | None] = [x.sum(dim=0)] if model.records_input else []
    idle: list[torch.Tensor | None] = []
    h = x
    for block in model.blocks[:-1]:
        h, count, quiet = block.integrate(block.currents(h))
        spikes.append(h)
        counts.append(count)
        idle.append(quiet)
    voltages, _, quiet = model.blocks[-1].integrate(model.blocks[-1].currents(h))
    idle.append(quiet)
    return SNNOutput(logits=reduce_readout(voltages, model.spec.readout.reduce), voltages=voltages, spikes=spikes,
                     spike_counts=counts if all(c is not None for c in counts) else None,
                     idle_steps=idle if all(q is not None for q in idle) else None)


@torch.no_grad()
def norse_idle_steps(model: SpikingNet, x: torch.Tensor, out: SNNOutput) -> list[torch.Tensor]:
    """Idle steps of every population under Norse float arithmetic: each block's Norse cell stepped on the currents
    its recorded input drives (the encoded input, then each hidden layer's spikes in ``out``), a step idle where the
    current is exactly 0 and every state variable is bitwise unchanged (the multi-step kernels are bit-identical to
    the cells, so these are the run's states). Where the kernels counted them in the forward pass
    (``out.idle_steps``, the compiled C++ kernels: the same comparisons), those counts are taken as they are."""
    if out.idle_steps is not None:  # whole numbers per batch: exact in the kernels' float
        return [quiet.sum(dim=0) for quiet in out.idle_steps]
    result = []
    for block, h in zip(model.blocks, [x, *model.hidden_spikes(out)], strict=True):
        currents = block.currents(h)
        before = block.neuron.initial_state(currents[0])
        state = None
        idle = torch.zeros(currents.shape[2:], dtype=torch.float64, device=currents.device)
        for current in currents.unbind(0):
            _, state = block.neuron(current, state)
            same = current == 0
            for name in state._fields:
                same = same & (getattr(state, name) == getattr(before, name).detach())
            idle += same.sum(dim=0)
            before = state
        result.append(idle)
    return result


Forward = Callable[[SpikingNet, torch.Tensor], SNNOutput]
IdleSteps = Callable[[SpikingNet, torch.Tensor, SNNOutput], list[torch.Tensor]]


@dataclass(frozen=True)
class Arithmetic:
    """How a network computes: ``forward(model, x) -> SNNOutput``, ``check(model)``, which refuses (one clear
    error) a model that this arithmetic cannot compute as its target does, and ``idle(model, x, out)``, the idle
    steps of each population in a run (:meth:`SpikingNet.idle_steps`; None: not counted)."""

    forward: Forward
    check: Callable[[SpikingNet], None] | None = None
    idle: IdleSteps | None = None


# ModelSpec.arithmetic -> how the network computes. Norse float is built in; other arithmetics register themselves
# when their module is imported (as Lava's select_tag picks a process model). ARITHMETIC_PROVIDERS names those
# modules, so that this module imports none of them.
ARITHMETIC: dict[str, Arithmetic] = {FLOAT_ARITHMETIC: Arithmetic(norse_forward, idle=norse_idle_steps)}
ARITHMETIC_PROVIDERS: dict[str, str] = {FIXED_POINT_ARITHMETIC: "export.loihi_exact"}


def register_arithmetic(name: str, forward: Forward, check: Callable[[SpikingNet], None] | None = None,
                        idle: IdleSteps | None = None) -> None:
    """Make ``forward`` (and ``check``, ``idle``) the arithmetic of models whose ``spec.arithmetic`` is ``name``."""
    ARITHMETIC[name] = Arithmetic(forward, check, idle)


def arithmetic(name: str) -> Arithmetic:
    """The arithmetic registered for ``name``, importing its provider module on first use."""
    if name not in ARITHMETIC and name in ARITHMETIC_PROVIDERS:
        importlib.import_module(ARITHMETIC_PROVIDERS[name])
    if name not in ARITHMETIC:
        raise NeuromorphError(f"unknown arithmetic {name!r}; registered: {', '.join(ARITHMETIC)}")
    return ARITHMETIC[name]


def build_model(spec: ModelSpec) -> SpikingNet:
    """Build a freshly initialized network from its description."""
    return SpikingNet(spec)


@torch.no_grad()
def calibrate_firing(
    model: SpikingNet, x: torch.Tensor, target_rate: float = 0.05, iterations: int = 24
) -> list[float]:
    """Data-driven initialization: rescale each hidden layer's weights so that it fires at about ``target_rate``.

    Layer by layer (earlier layers first, as later rates depend on them), the weight scale is bisected on a log
    scale between 2**-12 and 2**12 until the layer's mean spike rate (spikes per neuron per step) on the encoded
    batch ``x`` is within a factor 1.5 of the target. Without it a deep or pooled network can start silent, and
    a silent layer passes almost no surrogate gradient. Returns the scale applied to each hidden layer.
    """
    if not 0 < target_rate < 1:
        raise ValueError(f"target rate must be in (0, 1), got {target_rate}")
    offset = 1 if model.records_input else 0
    scales = []
    for number, block in enumerate(model.blocks[:-1]):
        weight = gain_parameter(block.synapse)
        original = weight.clone()
        low, high = -12.0, 12.0  # log2 of the scale
        scale = 0.0
        for _ in range(iterations):
            weight.copy_(original * 2.0**scale)
            rate = model(x).spikes[offset + number].mean().item()
            if target_rate / 1.5 <= rate <= target_rate * 1.5:
                break
            low, high = (scale, high) if rate < target_rate else (low, scale)
            scale = (low + high) / 2
        else:
            weight.copy_(original * 2.0**scale)
        scales.append(2.0**scale)
    return scales
