"""Model descriptions: validated, frozen data that is enough to rebuild a network.

A :class:`ModelSpec` is what a checkpoint stores next to the weights, what the exporters read and what the cost
model walks. Layers are listed in order; every synaptic layer (:class:`Dense`, :class:`Conv`) is followed by a
neuron population: a LIF layer, or the non-spiking leaky-integrator readout after the last synaptic layer.
:class:`Pool` and :class:`Flatten` act on spikes between a LIF layer and the next synaptic layer.

Units: ``dt_s`` in seconds, ``tau_*_inv`` in 1/s, voltages in Norse's dimensionless volts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from neuromorph.errors import NeuromorphError


class LayerBase:
    """What every layer class knows about itself: its type name (the ``type`` of its dict form), whether it is
    synaptic (it owns weights and a neuron population follows it) or a pass-through of spikes, its output shape,
    and its serialization. Backends keep one table each, keyed by the layer class (see ``tests/test_layer_tables.py``).
    """

    type_name: ClassVar[str]
    synaptic: ClassVar[bool]

    def output_shape(self, shape: tuple[int, ...], where: str = "") -> tuple[int, ...]:
        """Output shape (no batch) for input ``shape``; one clear error when the layer does not accept it."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, **asdict(self)}  # type: ignore[call-overload]


def _where(where: str, layer: LayerBase) -> str:
    return where or type(layer).__name__


def _image_shape(layer: LayerBase, shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise NeuromorphError(f"{_where(where, layer)} needs a [C, H, W] input, got shape {shape}")
    return shape  # type: ignore[return-value]


@dataclass(frozen=True)
class Dense(LayerBase):
    """Fully connected synapses ``y = W x`` (``[out_features, in_features]``), followed by a neuron layer.

    ``batch_norm``: the synaptic current is batch-normalized per output neuron in training (statistics over time
    steps and batch, as tdBN); :func:`neuromorph.models.fold_batch_norm` folds it into ``W`` and a bias exactly
    for inference, the cost model and the exporters."""

    type_name: ClassVar[str] = "dense"
    synaptic: ClassVar[bool] = True
    out_features: int
    bias: bool = False
    batch_norm: bool = False

    def __post_init__(self) -> None:
        _positive("Dense.out_features", self.out_features)

    def output_shape(self, shape: tuple[int, ...], where: str = "") -> tuple[int, ...]:
        if len(shape) != 1:
            raise NeuromorphError(f"{_where(where, self)} needs a flat input, got shape {shape}: add a Flatten "
                                  "before it")
        return (self.out_features,)


@dataclass(frozen=True)
class Conv(LayerBase):
    """2-D convolution (square kernel, stride and zero padding), followed by a neuron layer.

    ``batch_norm``: per output channel, over time steps, batch and pixels (tdBN), folded for inference as
    :class:`Dense`'s."""

    type_name: ClassVar[str] = "conv"
    synaptic: ClassVar[bool] = True
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    bias: bool = False
    batch_norm: bool = False

    def __post_init__(self) -> None:
        _positive("Conv.out_channels", self.out_channels)
        _positive("Conv.kernel_size", self.kernel_size)
        _positive("Conv.stride", self.stride)
        check_value("Conv.padding", self.padding, "int")

    def output_shape(self, shape: tuple[int, ...], where: str = "") -> tuple[int, ...]:
        _, height, width = _image_shape(self, shape, where)
        out_h = (height + 2 * self.padding - self.kernel_size) // self.stride + 1
        out_w = (width + 2 * self.padding - self.kernel_size) // self.stride + 1
        if out_h <= 0 or out_w <= 0:
            raise NeuromorphError(f"{_where(where, self)}: kernel {self.kernel_size} does not fit input {shape}")
        return (self.out_channels, out_h, out_w)


POOL_MODES = ("avg", "sum")


@dataclass(frozen=True)
class Pool(LayerBase):
    """Non-overlapping 2-D pooling of spikes (window = stride = ``kernel_size``, no padding).

    ``avg`` divides by ``kernel_size**2``, ``sum`` does not. On a chip, pooling is folded into the weights of the
    next synaptic layer, so a spike's fan-out is that of the pooled position it falls into (see hw_models.fanout).
    """

    type_name: ClassVar[str] = "pool"
    synaptic: ClassVar[bool] = False
    kernel_size: int
    mode: str = "avg"

    def __post_init__(self) -> None:
        _positive("Pool.kernel_size", self.kernel_size)
        if self.mode not in POOL_MODES:
            raise NeuromorphError(f"Pool.mode must be one of {', '.join(POOL_MODES)}, got {self.mode!r}")

    def output_shape(self, shape: tuple[int, ...], where: str = "") -> tuple[int, ...]:
        channels, height, width = _image_shape(self, shape, where)
        if height < self.kernel_size or width < self.kernel_size:
            raise NeuromorphError(f"{_where(where, self)}: window {self.kernel_size} does not fit input {shape}")
        return (channels, height // self.kernel_size, width // self.kernel_size)


@dataclass(frozen=True)
class Flatten(LayerBase):
    """Flatten ``[C, H, W]`` to ``[C*H*W]`` (C-order, as torch does)."""

    type_name: ClassVar[str] = "flatten"
    synaptic: ClassVar[bool] = False

    def output_shape(self, shape: tuple[int, ...], where: str = "") -> tuple[int, ...]:
        return (math.prod(shape),)


Layer = Dense | Conv | Pool | Flatten
LAYER_CLASSES: tuple[type[LayerBase], ...] = (Dense, Conv, Pool, Flatten)
LAYER_TYPES: dict[str, type] = {cls.type_name: cls for cls in LAYER_CLASSES}
SYNAPTIC_TYPES = tuple(cls for cls in LAYER_CLASSES if cls.synaptic)
SUPPORTED_LAYERS = ", ".join(cls.__name__ for cls in LAYER_CLASSES)


def unsupported_layer(layer: Any, what: str = "") -> NeuromorphError:
    """The one error for a layer a table has no row for (``what``: the backend, e.g. 'NIR export')."""
    return NeuromorphError(f"unsupported layer {layer!r}{' for ' + what if what else ''}; supported: "
                           f"{SUPPORTED_LAYERS}")


CELL_TYPES = ("lif", "lifbox")


@dataclass(frozen=True)
class NeuronSpec:
    """Norse LIF parameters of every hidden layer (DESIGN.md section 3).

    ``cell`` is ``lif`` (``LIFCell``, current-based synapse) or ``lifbox`` (``LIFBoxCell``, no synaptic current
    state, i.e. tau_syn -> dt). ``surrogate`` is Norse's ``method`` and ``alpha`` its sharpness; Norse 1.1.0's
    ``super`` (SuperSpike) backward is ``grad / (|v - v_th| + 1)**2`` and ignores ``alpha``.
    """

    cell: str = "lif"
    tau_mem_inv: float = 100.0
    tau_syn_inv: float = 200.0
    v_th: float = 1.0
    v_leak: float = 0.0
    v_reset: float = 0.0
    surrogate: str = "super"
    alpha: float = 100.0

    def __post_init__(self) -> None:
        if self.cell not in CELL_TYPES:
            raise NeuromorphError(f"neuron cell must be one of {', '.join(CELL_TYPES)}, got {self.cell!r}")
        if self.surrogate not in SURROGATES:
            raise NeuromorphError(f"neuron surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        _positive("tau_mem_inv", self.tau_mem_inv)
        _positive("tau_syn_inv", self.tau_syn_inv)
        _positive("alpha", self.alpha)
        for name in ("v_th", "v_leak", "v_reset"):
            _finite(name, getattr(self, name))
        if self.v_th <= self.v_reset:
            raise NeuromorphError(f"v_th ({self.v_th}) must be above v_reset ({self.v_reset})")


@dataclass(frozen=True)
class ReadoutSpec:
    """Non-spiking leaky-integrator readout (Norse ``LICell``); logits are ``reduce`` of its voltage over time."""

    tau_mem_inv: float = 100.0
    tau_syn_inv: float = 200.0
    reduce: str = "max"

    def __post_init__(self) -> None:
        _positive("readout tau_mem_inv", self.tau_mem_inv)
        _positive("readout tau_syn_inv", self.tau_syn_inv)
        if self.reduce not in READOUT_REDUCTIONS:
            raise NeuromorphError(
                f"readout reduce must be one of {', '.join(READOUT_REDUCTIONS)}, got {self.reduce!r}"
            )


READOUT_REDUCTIONS = ("max", "mean", "last")
ENCODER_KINDS = ("direct", "poisson")


@dataclass(frozen=True)
class EncoderSpec:
    """How an image in [0, 1] becomes a time-major input ``[T, B, ...]``.

    ``direct``: the image times ``gain`` as a constant input current on every step (the first synaptic layer then
    does multiply-accumulates). ``poisson``: independent Bernoulli spikes per step with probability
    ``min(1, pixel * max_rate_hz * dt_s)`` (binary input, so the first layer does synaptic operations).
    """

    kind: str = "direct"
    gain: float = 1.0
    max_rate_hz: float = 500.0

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise NeuromorphError(f"encoder must be one of {', '.join(ENCODER_KINDS)}, got {self.kind!r}")
        _finite("encoder gain", self.gain)
        _positive("encoder max_rate_hz", self.max_rate_hz)


FLOAT_ARITHMETIC = "norse-float"  # ModelSpec.arithmetic without fixed_point
FIXED_POINT_ARITHMETIC = "loihi-fixed-point"  # ModelSpec.arithmetic with fixed_point set


@dataclass(frozen=True)
class FixedPointSpec:
    """The network computes as Loihi fixed point does (Loihi-exact training, :mod:`export.loihi_exact`).

    Weights sit on the 8-bit grid with the per-layer scale rule of :mod:`export.quantize`, decays truncate toward
    zero, states are integers of the bit widths in :mod:`hw_models.loihi`. ``readout_volts`` (Norse volts) bounds the
    readout voltage: it sets the readout's scale so that its voltage fits Loihi's 24-bit state, and the export uses
    the same value, so that the exported network is the one that was trained.
    """

    readout_volts: float

    def __post_init__(self) -> None:
        _positive("fixed_point.readout_volts", self.readout_volts)


@dataclass(frozen=True)
class ModelSpec:
    """The full description of a network: input shape, layers, neurons, readout, encoder, time."""

    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    num_classes: int
    time_steps: int = 16
    dt_s: float = 1e-3
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    readout: ReadoutSpec = field(default_factory=ReadoutSpec)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    name: str = "snn"
    fixed_point: FixedPointSpec | None = None  # None: Norse float arithmetic; set: Loihi fixed point (exact)

    def __post_init__(self) -> None:
        for size in self.input_shape:
            check_value("input_shape", size, "int")  # 1.5 is refused, not truncated
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.input_shape or any(s <= 0 for s in self.input_shape):
            raise NeuromorphError(f"input_shape must be positive sizes, got {self.input_shape}")
        _positive("time_steps", self.time_steps)
        _positive("dt_s", self.dt_s)
        _positive("num_classes", self.num_classes)
        synaptic = [layer for layer in self.layers if isinstance(layer, SYNAPTIC_TYPES)]
        if not synaptic:
            raise NeuromorphError("a model needs at least one Dense or Conv layer")
        if not isinstance(self.layers[-1], Dense) or self.layers[-1].out_features != self.num_classes:
            raise NeuromorphError(f"the last layer must be Dense({self.num_classes}) feeding the readout")
        shapes = self.layer_shapes()  # validates that the shapes chain
        for shape in [self.input_shape, *shapes]:
            if math.prod(shape) > MAX_SIZE:
                raise NeuromorphError(f"a layer of shape {shape} is too large (more than {MAX_SIZE} values)")

    @property
    def arithmetic(self) -> str:
        """The arithmetic the network computes in (a key of :data:`neuromorph.models.ARITHMETIC`)."""
        return FLOAT_ARITHMETIC if self.fixed_point is None else FIXED_POINT_ARITHMETIC

    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Output shape (without batch) of every layer, checking that each layer accepts its input."""
        shape = self.input_shape
        shapes = []
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, LAYER_CLASSES):
                raise unsupported_layer(layer)
            shape = layer.output_shape(shape, f"layer {index} ({type(layer).__name__})")
            shapes.append(shape)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        extra = {"fixed_point": asdict(self.fixed_point)} if self.fixed_point is not None else {}
        return {
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "num_classes": self.num_classes,
            "time_steps": self.time_steps,
            "dt_s": self.dt_s,
            "neuron": asdict(self.neuron),
            "readout": asdict(self.readout),
            "encoder": asdict(self.encoder),
            "name": self.name,
            **extra,  # absent for float models, so that older readers and files stay unchanged
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        if not isinstance(data, dict):
            raise NeuromorphError(f"invalid model description: expected a mapping, got {data!r:.60}")
        try:
            layers = []
            if not isinstance(data["layers"], list | tuple):
                raise NeuromorphError(f"layers must be a list, got {data['layers']!r:.60}")
            shape = data["input_shape"]
            if not isinstance(shape, list | tuple) or not shape:
                raise NeuromorphError(f"input_shape must be a list of sizes, got {shape!r:.60}")
            for size in shape:
                check_value("input_shape", size, "int")
            for key, kind in (("num_classes", "int"), ("time_steps", "int"), ("dt_s", "float"),
                              ("name", "str")):
                if key in data:
                    check_value(key, data[key], kind)
            for entry in data["layers"]:
                if not isinstance(entry, dict):
                    raise NeuromorphError(f"a layer must be a mapping, got {entry!r:.60}")
                entry = dict(entry)
                kind = entry.pop("type")
                if not isinstance(kind, str) or kind not in LAYER_TYPES:
                    raise NeuromorphError(
                        f"unknown layer type {kind!r}; supported: {', '.join(LAYER_TYPES)}"
                    )
                layers.append(_build(LAYER_TYPES[kind], entry))
            return cls(
                input_shape=tuple(data["input_shape"]),
                layers=tuple(layers),
                num_classes=int(data["num_classes"]),
                time_steps=int(data["time_steps"]),
                dt_s=float(data["dt_s"]),
                neuron=_build(NeuronSpec, data.get("neuron", {})),
                readout=_build(ReadoutSpec, data.get("readout", {})),
                encoder=_build(EncoderSpec, data.get("encoder", {})),
                name=str(data.get("name", "snn")),
                fixed_point=_build(FixedPointSpec, data["fixed_point"]) if data.get("fixed_point") else None,
            )
        except NeuromorphError as error:
            raise NeuromorphError(f"invalid model description: {error}") from None
        except KeyError as error:
            raise NeuromorphError(f"invalid model description: missing field {error.args[0]!r}") from None
        except (TypeError, ValueError, OverflowError) as error:
            raise NeuromorphError(f"invalid model description: {error!r:.200}") from None


MAX_SIZE = 2**31 - 1  # the largest count or size a description may hold (a torch int32 index)
SURROGATES = ("super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc")  # Norse 1.1.0 threshold methods


def check_value(name: str, value: Any, kind: str) -> Any:
    """``value`` if it is of ``kind`` (``int``, ``float``, ``bool`` or ``str``, as a field annotation names it):
    types checked, not coerced (a bool is no int, 10.0 is no int); ints in [0, MAX_SIZE], floats finite."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE,
        "float": isinstance(value, int | float) and not isinstance(value, bool)
        and abs(value) < 1e300 and math.isfinite(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }[kind]
    if not ok:
        expected = {"int": f"an integer in [0, {MAX_SIZE}]", "float": "a finite number", "bool": "true or false",
                    "str": "a string"}[kind]
        raise NeuromorphError(f"{name} must be {expected}, got {value!r:.60}")
    return value


def _build(cls: type, values: Any) -> Any:
    """``cls(**values)`` from a description's dict, each field's type checked against its annotation."""
    if not isinstance(values, dict):
        raise NeuromorphError(f"{cls.__name__} must be a mapping of fields, got {values!r:.60}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise NeuromorphError(f"unknown field(s) {sorted(map(str, unknown))} for {cls.__name__}; "
                              f"known: {sorted(known)}")
    for key, value in values.items():
        kind = str(known[key].type)
        if kind in ("int", "float", "bool", "str"):
            check_value(f"{cls.__name__}.{key}", value, kind)
    return cls(**values)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= MAX_SIZE):
        raise NeuromorphError(f"{name} must be a positive number, got {value!r}")


def _finite(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        raise NeuromorphError(f"{name} must be a finite number, got {value!r}")


def mlp_spec(
    input_shape: tuple[int, ...] = (1, 28, 28),
    hidden: tuple[int, ...] = (400,),
    num_classes: int = 10,
    **kwargs: Any,
) -> ModelSpec:
    """``Flatten -> [Dense(h) -> LIF]* -> Dense(num_classes) -> LI readout``."""
    batch_norm = kwargs.pop("batch_norm", False)
    layers: list[Layer] = [Flatten()]
    layers += [Dense(h, batch_norm=batch_norm) for h in hidden]
    layers.append(Dense(num_classes))
    return ModelSpec(input_shape=input_shape, layers=tuple(layers), num_classes=num_classes,
                     name=kwargs.pop("name", "mlp"), **kwargs)


def cnn_spec(
    input_shape: tuple[int, ...] = (1, 28, 28),
    channels: tuple[int, ...] = (16, 32),
    kernel_size: int = 5,
    padding: int = 0,
    pool: int = 2,
    pool_mode: str = "avg",
    hidden: tuple[int, ...] = (),
    num_classes: int = 10,
    **kwargs: Any,
) -> ModelSpec:
    """``[Conv(c, k) -> LIF -> Pool]* -> Flatten -> [Dense(h) -> LIF]* -> Dense(num_classes) -> LI readout``."""
    batch_norm = kwargs.pop("batch_norm", False)
    layers: list[Layer] = []
    for c in channels:
        layers.append(Conv(c, kernel_size, padding=padding, batch_norm=batch_norm))
        if pool > 1:
            layers.append(Pool(pool, pool_mode))
    layers.append(Flatten())
    layers += [Dense(h, batch_norm=batch_norm) for h in hidden]
    layers.append(Dense(num_classes))
    return ModelSpec(input_shape=input_shape, layers=tuple(layers), num_classes=num_classes,
                     name=kwargs.pop("name", "cnn"), **kwargs)
