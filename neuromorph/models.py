"""Spiking networks built from Norse cells, from a :class:`~neuromorph.spec.ModelSpec`.

Tensors are time-major ``[T, B, ...]``. Stateless synaptic layers (Linear, Conv2d) and pooling run on all T steps
at once with time folded into the batch; only the neuron recurrences (Norse ``LIFCell``/``LIFBoxCell`` and the
``LICell`` readout) loop over time. Each hidden layer's spikes are returned for the penalty and for reports.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

with warnings.catch_warnings():  # norse 1.1.0 calls torch.jit.script at import, which torch 2.14 deprecates
    warnings.simplefilter("ignore", FutureWarning)
    from norse.torch import LICell, LIFBoxCell, LIFCell
    from norse.torch.functional.leaky_integrator import LIParameters
    from norse.torch.functional.lif import LIFParameters
    from norse.torch.functional.lif_box import LIFBoxParameters

from hw_models.fanout import model_fan_outs, spike_sources
from neuromorph.spec import SYNAPTIC_TYPES, Conv, Dense, Flatten, ModelSpec, Pool


@dataclass
class SNNOutput:
    """What one forward pass produces.

    ``logits``: ``[B, classes]`` (the readout voltage reduced over time); ``voltages``: readout voltage
    ``[T, B, classes]``; ``spikes``: one ``[T, B, *shape]`` tensor per spike source of the spec, in the order of
    :func:`hw_models.fanout.spike_sources` (the encoded input first when it is spike-encoded).
    """

    logits: torch.Tensor
    voltages: torch.Tensor
    spikes: list[torch.Tensor]


class _SumPool2d(nn.Module):
    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(x, self.kernel_size) * self.kernel_size**2


def _passthrough(layer) -> nn.Module:
    if isinstance(layer, Flatten):
        return nn.Flatten(start_dim=1)
    if isinstance(layer, Pool):
        return nn.AvgPool2d(layer.kernel_size) if layer.mode == "avg" else _SumPool2d(layer.kernel_size)
    raise TypeError(layer)


def _synapse(layer, in_shape: tuple[int, ...]) -> nn.Module:
    if isinstance(layer, Dense):
        return nn.Linear(in_shape[0], layer.out_features, bias=layer.bias)
    if isinstance(layer, Conv):
        return nn.Conv2d(in_shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                         bias=layer.bias)
    raise TypeError(layer)


def make_cell(spec: ModelSpec) -> nn.Module:
    """The Norse cell of a hidden layer, with the spec's parameters."""
    n = spec.neuron
    if n.cell == "lifbox":
        p = LIFBoxParameters(
            tau_mem_inv=torch.as_tensor(n.tau_mem_inv), v_leak=torch.as_tensor(n.v_leak),
            v_th=torch.as_tensor(n.v_th), v_reset=torch.as_tensor(n.v_reset), method=n.surrogate,
            alpha=torch.as_tensor(n.alpha),
        )
        return LIFBoxCell(p, dt=spec.dt_s)
    p = LIFParameters(
        tau_syn_inv=torch.as_tensor(n.tau_syn_inv), tau_mem_inv=torch.as_tensor(n.tau_mem_inv),
        v_leak=torch.as_tensor(n.v_leak), v_th=torch.as_tensor(n.v_th), v_reset=torch.as_tensor(n.v_reset),
        method=n.surrogate, alpha=torch.as_tensor(n.alpha),
    )
    return LIFCell(p, dt=spec.dt_s)


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

    def integrate(self, currents: torch.Tensor) -> torch.Tensor:
        """Run the neuron recurrence over time; returns spikes (or readout voltages) ``[T, B, ...]``."""
        state = None
        outputs = []
        # unbind, not currents[step]: indexing's backward writes each step's gradient into a zero tensor of the
        # full [T, B, ...] size (T times the memory traffic); unbind's backward stacks them once.
        for current in currents.unbind(0):
            out, state = self.neuron(current, state)
            outputs.append(out)
        return torch.stack(outputs)


class SpikingNet(nn.Module):
    """A feed-forward SNN: ``[pre -> synapse -> LIF]* -> pre -> synapse -> LI readout``.

    ``forward`` takes an encoded, time-major input ``[T, B, *input_shape]`` (see :mod:`neuromorph.encoders`).
    With ``spec.fixed_point`` set it computes as Loihi fixed point does (:mod:`export.loihi_exact`).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        shapes = [spec.input_shape, *spec.layer_shapes()]
        synaptic = [i for i, layer in enumerate(spec.layers) if isinstance(layer, SYNAPTIC_TYPES)]
        blocks = []
        start = 0
        for index in synaptic:
            pre = [_passthrough(layer) for layer in spec.layers[start:index]]
            neuron = make_readout(spec) if index == synaptic[-1] else make_cell(spec)
            blocks.append(_Block(pre, _synapse(spec.layers[index], shapes[index]), neuron, shapes[index + 1]))
            start = index + 1
        self.blocks = nn.ModuleList(blocks)
        self.sources = spike_sources(spec)
        self.records_input = bool(self.sources) and self.sources[0].name == "input"
        for number, psi in enumerate(model_fan_outs(spec)):
            self.register_buffer(f"fan_out_{number}", psi.float(), persistent=False)

    @property
    def fan_outs(self) -> list[torch.Tensor]:
        """Exact fan-out of each spike source (same order as ``SNNOutput.spikes``)."""
        return [getattr(self, f"fan_out_{n}") for n in range(len(self.sources))]

    @property
    def synapses(self) -> list[nn.Module]:
        return [block.synapse for block in self.blocks]

    def forward(self, x: torch.Tensor) -> SNNOutput:
        expected = (self.spec.time_steps, *self.spec.input_shape)
        if x.dim() != len(expected) + 1 or x.shape[0] != expected[0] or tuple(x.shape[2:]) != expected[1:]:
            raise ValueError(f"expected input [T={expected[0]}, B, {', '.join(map(str, expected[1:]))}], "
                             f"got {list(x.shape)}")
        if self.spec.fixed_point is not None:  # Loihi-exact: the chip's integer arithmetic (export/loihi_exact.py)
            from export.loihi_exact import fixed_point_forward

            return fixed_point_forward(self, x)
        spikes = [x] if self.records_input else []
        h = x
        for block in self.blocks[:-1]:
            h = block.integrate(block.currents(h))
            spikes.append(h)
        voltages = self.blocks[-1].integrate(self.blocks[-1].currents(h))
        return SNNOutput(logits=reduce_readout(voltages, self.spec.readout.reduce), voltages=voltages,
                         spikes=spikes)


def reduce_readout(voltages: torch.Tensor, how: str) -> torch.Tensor:
    """Logits from readout voltages ``[T, B, C]``: max, mean or last over time."""
    if how == "max":
        return voltages.max(dim=0).values
    if how == "mean":
        return voltages.mean(dim=0)
    return voltages[-1]


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
        weight = block.synapse.weight
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
