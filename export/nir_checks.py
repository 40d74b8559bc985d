"""Validation of a NIR graph before it is read (:mod:`export.nir_import`): types checked, not coerced.

A NIR file is HDF5: any array may hold strings, any metadata entry may be an array, and a graph from another tool may
carry anything. :func:`check_graph` refuses, with one line that names the node or metadata key, every value the
reader would otherwise trip over: node parameters that are not finite numbers, and metadata ``dt_s``, ``time_steps``,
``time_unit`` and the embedded model description (``neuromorph_spec``, JSON of a
:class:`~neuromorph.spec.ModelSpec`) of the wrong type. It also verifies the graph's checksum
(``neuromorph_checksum``, written by :mod:`export.nir_export`) when the graph carries one, so that a file changed
after it was written is refused, never run.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from neuromorph.errors import NeuromorphError

CHECKSUM_KEY = "neuromorph_checksum"
SPEC_KEY = "neuromorph_spec"
# node attributes that are names, not numbers
_TEXT_ATTRIBUTES = frozenset({"padding", "metadata", "type"})


def _text(value: Any) -> str | None:
    """A metadata string as NIR reads it back (str, bytes or a 0-d string array), else None."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value) if isinstance(value, str) else None


def _scalar(value: Any) -> Any:
    """A 0-d or one-element array as its Python value; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        return value.reshape(()).item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def metadata_number(meta: Mapping[str, Any], key: str, integer: bool = False) -> float | int | None:
    """``meta[key]`` as a finite positive number (an integer when ``integer``), None when absent."""
    if key not in meta:
        return None
    value = _scalar(meta[key])
    kind = "a positive integer" if integer else "a positive finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise NeuromorphError(f"NIR metadata {key} must be {kind}, got {_show(meta[key])}")
    if not (math.isfinite(value) and value > 0):
        raise NeuromorphError(f"NIR metadata {key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def metadata_text(meta: Mapping[str, Any], key: str) -> str | None:
    """``meta[key]`` as a string, None when absent."""
    if key not in meta:
        return None
    text = _text(meta[key])
    if text is None:
        raise NeuromorphError(f"NIR metadata {key} must be a string, got {_show(meta[key])}")
    return text


def recorded_spec(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The embedded model description, checked to be a valid :class:`~neuromorph.spec.ModelSpec` (None if absent)."""
    from neuromorph.spec import ModelSpec

    text = metadata_text(meta, SPEC_KEY)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise NeuromorphError(f"NIR metadata {SPEC_KEY} is not valid JSON") from None
    if not isinstance(data, dict):
        raise NeuromorphError(f"NIR metadata {SPEC_KEY} must be a JSON object (a model description), got "
                              f"{type(data).__name__}")
    try:
        ModelSpec.from_dict(data)
    except NeuromorphError as error:
        raise NeuromorphError(f"NIR metadata {SPEC_KEY}: {error}") from None
    return data


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _check_array(where: str, value: Any, infinite_ok: bool = False) -> None:
    if isinstance(value, bool | str | bytes | type(None)) or isinstance(value, Mapping):
        return
    array = value if isinstance(value, np.ndarray) else None
    if array is None and isinstance(value, list | tuple | numbers.Number):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise NeuromorphError(f"{where} must be an array of numbers, got a ragged sequence") from None
    if array is None:
        return
    if array.dtype.kind not in "biuf":
        raise NeuromorphError(f"{where} must hold numbers, got {_show(array)}")
    if array.dtype.kind == "f" and not (np.isfinite(array) | (infinite_ok & (array == np.inf))).all():
        raise NeuromorphError(f"{where} holds NaN or infinite values")


def check_graph(graph: Any) -> None:
    """Refuse a graph whose node parameters or metadata are not what a NIR graph of numbers holds (module doc)."""
    meta = getattr(graph, "metadata", None) or {}
    if not isinstance(meta, Mapping):
        raise NeuromorphError(f"NIR metadata must be a dict, got {type(meta).__name__}")
    for key in ("time_unit", "format", "description"):
        metadata_text(meta, key)
    metadata_number(meta, "dt_s")
    metadata_number(meta, "time_steps", integer=True)
    recorded_spec(meta)
    nodes = getattr(graph, "nodes", None)
    if not isinstance(nodes, Mapping) or not nodes:
        raise NeuromorphError("the NIR graph has no nodes")
    for name, node in nodes.items():
        for attribute, value in vars(node).items():
            if attribute in _TEXT_ATTRIBUTES:
                continue
            if attribute in ("input_type", "output_type") and isinstance(value, Mapping):
                for port, shape in value.items():
                    _check_shape(f"NIR node {name!r}: {attribute}[{port!r}]", shape)
                continue
            # a threshold of +inf is a neuron that never fires: the readout of the files written for other tools
            _check_array(f"NIR node {name!r}: {attribute}", value, infinite_ok=attribute == "v_threshold")
    verify_checksum(graph)


def _check_shape(where: str, shape: Any) -> None:
    array = np.asarray(shape)
    if array.dtype.kind not in "iu" or array.ndim > 1 or (array.size and int(array.min()) <= 0):
        raise NeuromorphError(f"{where} must be a list of positive integers, got {_show(array)}")


def graph_checksum(graph: Any) -> str:
    """sha256 of every node's name, type and numeric parameters (names sorted) and of the edges."""
    digest = hashlib.sha256()
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        digest.update(f"{name}:{type(node).__name__}".encode())
        for attribute in sorted(vars(node)):
            value = vars(node)[attribute]
            if attribute in ("metadata", "input_type", "output_type"):
                continue
            if isinstance(value, str | bytes):
                digest.update(f"{attribute}={_text(value)}".encode())
                continue
            array = np.ascontiguousarray(np.asarray(value))
            if array.dtype.kind not in "biuf":
                digest.update(f"{attribute}={array!r}".encode())
                continue
            array = array.astype(np.float64 if array.dtype.kind == "f" else np.int64)
            digest.update(f"{attribute}:{array.shape}".encode())
            digest.update(array.tobytes())
    for src, dst in sorted((str(s), str(d)) for s, d in graph.edges):
        digest.update(f"{src}->{dst}".encode())
    return digest.hexdigest()


def verify_checksum(graph: Any) -> None:
    """Refuse a graph whose recorded checksum does not match its nodes (absent: nothing to verify)."""
    meta = getattr(graph, "metadata", None) or {}
    recorded = metadata_text(meta, CHECKSUM_KEY)
    if recorded is not None and recorded != graph_checksum(graph):
        raise NeuromorphError("the NIR graph is corrupt: its weights or parameters do not match the checksum it was "
                              "written with (neuromorph_checksum)")
