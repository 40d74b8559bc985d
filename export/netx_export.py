"""Write a quantized network as lava-dl netx HDF5 (read by ``lava.lib.dl.netx.hdf5.Network``, lava-dl 0.6.0).

Layout (DESIGN.md section 5): ``layer/<i>/{type, shape, weight}`` with ``neuron/{type 'CUBA', iDecay,
vDecay, vThMant}``; conv layers add ``stride, padding, dilation, groups``. Shapes are written ``[C, H, W]`` (netx
reverses them to Lava's ``(x, y, z)``), conv weights ``[C_out, C_in, kH, kW]`` as torch holds them, a ``flatten``
layer before a dense layer that follows a 3-D one (netx then flattens in torch's C order). Weights are integers.

Choices (see :mod:`export.quantize`): pooling is folded into the next layer's weights (netx has no pool layer);
with direct input the first synaptic layer runs on the host and the file starts with an ``input`` layer whose CUBA
neurons take that current (drive ``net.layers[0].neuron.a_in``; netx leaves ``net.inp`` unconnected then); the
non-spiking readout is the last dense layer with the largest threshold, its class scores being the neurons' voltage
``v`` (read it with a monitor), in mantissa units: Norse volts times ``scale * 64``.

A ``neuromorph`` group records dt, units, scales, the input convention, versions and the model description.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from export.chip_plan import ChipLayer, ChipPlan
from export.nir_export import tool_versions

NETX_FORMAT = "neuromorph.netx"


def _neuron(group: h5py.Group, layer: ChipLayer) -> None:
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data=np.bytes_("CUBA"))
    neuron.create_dataset("iDecay", data=np.int64(layer.i_decay))
    neuron.create_dataset("vDecay", data=np.int64(layer.v_decay))
    neuron.create_dataset("vThMant", data=np.int64(layer.v_th_mant))
    neuron.create_dataset("refDelay", data=np.int64(1))  # written by slayer, not read by netx
    neuron.create_dataset("gradedSpike", data=np.bool_(False))


def _dense_layer(group: h5py.Group, layer: ChipLayer) -> None:
    group.create_dataset("weight", data=layer.weight.astype(np.int64).reshape(layer.out_shape[0], -1))


def _conv_layer(group: h5py.Group, layer: ChipLayer) -> None:
    group.create_dataset("weight", data=layer.weight.astype(np.int64))
    group.create_dataset("stride", data=np.array([layer.stride, layer.stride], dtype=np.int64))
    group.create_dataset("padding", data=np.array([layer.padding, layer.padding], dtype=np.int64))
    group.create_dataset("dilation", data=np.array([1, 1], dtype=np.int64))
    group.create_dataset("groups", data=np.int64(layer.groups))


def _host_layer(group: h5py.Group, layer: ChipLayer) -> None:
    """A netx ``input`` layer with a neuron: its current comes from the host, it has no weights."""


# netx layer type (ChipLayer.kind) -> what its group holds besides type, shape and neuron
NETX_LAYER_WRITERS = {"dense": _dense_layer, "conv": _conv_layer, "input": _host_layer}


def _write_layers(root: h5py.Group, qnet: ChipPlan) -> None:
    layers = root.create_group("layer")
    index = 0

    def new(kind: str) -> h5py.Group:
        nonlocal index
        group = layers.create_group(str(index))
        group.create_dataset("type", data=np.bytes_(kind))
        index += 1
        return group

    first = qnet.layers[0]
    if not first.on_host and first.spatial:  # netx infers a first conv's input shape from a neuron-less input layer
        new("input").create_dataset("shape", data=np.array(first.in_shape, dtype=np.int64))
    for layer in qnet.layers:
        if layer.flatten_before:
            new("flatten")
        group = new(layer.kind)
        group.create_dataset("shape", data=np.array(layer.out_shape, dtype=np.int64))
        NETX_LAYER_WRITERS[layer.kind](group, layer)
        _neuron(group, layer)


def netx_metadata(qnet: ChipPlan) -> dict[str, Any]:
    spec = qnet.spec
    return {
        "format": NETX_FORMAT,
        "dt_s": spec.dt_s,
        "time_unit": "s",
        "time_steps": spec.time_steps,
        "input": qnet.input_kind,
        "input_note": ("binary spikes into net.inp" if not qnet.layers[0].on_host else
                       "host-computed integer current into net.layers[0].neuron.a_in (first synaptic layer "
                       "runs on the host: direct encoding)"),
        "readout": "voltage v of the last layer's neurons (never spike: largest vThMant), units of 1/(scale*64) volt",
        "scales": json.dumps([layer.scale for layer in qnet.layers]),
        "layers": json.dumps([{k: v for k, v in row.items()} for row in qnet.layer_table()]),
        "constants": json.dumps(qnet.constants.__dict__),
        "neuromorph_spec": json.dumps(spec.to_dict()),
        "tool_versions": json.dumps({**tool_versions(), **_lava_versions()}),
    }


def _lava_versions() -> dict[str, str]:
    from neuromorph.versions import tool_versions

    return tool_versions("lava-nc", "lava-dl")


def netx_bytes(qnet: ChipPlan) -> bytes:
    """The netx HDF5 file of ``qnet``, as bytes."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        _write_layers(handle, qnet)
        meta = handle.create_group("neuromorph")
        for key, value in netx_metadata(qnet).items():
            meta.attrs[key] = value
        meta.attrs["checksum"] = netx_checksum(handle)
    return buffer.getvalue()


def netx_checksum(handle: h5py.File) -> str:
    """sha256 of every dataset outside the ``neuromorph`` metadata group: its path, dtype, shape and bytes."""
    import hashlib

    digest = hashlib.sha256()
    names: list[str] = []
    handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset)
                      and not name.startswith("neuromorph/") else None)
    for name in sorted(names):
        data = np.ascontiguousarray(handle[name][()])
        digest.update(f"{name}|{data.dtype.str}|{data.shape}|".encode())
        digest.update(data.tobytes())
    return digest.hexdigest()


def verify_netx(path: str | os.PathLike) -> None:
    """Refuse a netx file that is not readable HDF5, or whose layers do not match the checksum it was written
    with (a file without one, from another tool, is not checked)."""
    from neuromorph.errors import NeuromorphError

    try:
        with h5py.File(path, "r") as handle:
            recorded = handle["neuromorph"].attrs.get("checksum") if "neuromorph" in handle else None
            actual = netx_checksum(handle) if recorded is not None else None
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise NeuromorphError(f"{str(path)!r} is not a readable netx file ({str(error)[:80]})") from None
    if recorded is not None and (recorded.decode() if isinstance(recorded, bytes) else str(recorded)) != actual:
        raise NeuromorphError(f"netx file {str(path)!r} is corrupt: its layers do not match the checksum it was "
                              "written with")


def write_netx(qnet: ChipPlan, path: str | os.PathLike) -> Path:
    """Write ``qnet`` to ``path`` atomically."""
    from neuromorph.io import atomic_write

    data = netx_bytes(qnet)
    return atomic_write(path, lambda handle: handle.write(data))


def read_netx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    verify_netx(path)
    with h5py.File(path, "r") as handle:
        return {key: (value.decode() if isinstance(value, bytes) else value)
                for key, value in handle["neuromorph"].attrs.items()}
