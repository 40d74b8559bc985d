"""Adding a layer kind is one class in neuromorph/spec.py plus one row per backend table. This walks every layer
class against every table and names what is missing, so that a new layer kind's to-do list is this test's output."""

from __future__ import annotations

import dataclasses

import pytest

from export.chip_plan import CHIP_RULES, SYNAPSE_KINDS
from export.lava_sim import COPIES, LAVA_SYNAPSES
from export.loihi_cuba import SYNAPTIC_SUMS
from export.netx_export import NETX_LAYER_WRITERS
from export.nir_export import NIR_WRITERS
from export.nir_import import NIR_READABLE_LAYERS
from hw_models.fanout import FAN_OUT_RULES
from hw_models.mapping import MAPPING_RULES
from neuromorph.models import NEURON_CELLS, TORCH_MODULES
from neuromorph.outputs import READOUT_REDUCERS
from neuromorph.spec import (
    CELL_TYPES,
    LAYER_CLASSES,
    LAYER_TYPES,
    READOUT_REDUCTIONS,
    Conv,
    Dense,
    Flatten,
    LayerBase,
    ModelSpec,
    Pool,
)

# backend table -> the layer classes it has rows for (read when called, so that a test can take a row out)
LAYER_TABLES = {
    "neuromorph.spec.LAYER_TYPES (serialization)": lambda: set(LAYER_TYPES.values()),
    "neuromorph.models.TORCH_MODULES": lambda: set(TORCH_MODULES),
    "hw_models.fanout.FAN_OUT_RULES": lambda: set(FAN_OUT_RULES),
    "hw_models.mapping.MAPPING_RULES": lambda: set(MAPPING_RULES),
    "export.nir_export.NIR_WRITERS": lambda: set(NIR_WRITERS),
    "export.nir_import readers (NIR_READABLE_LAYERS)": lambda: set(NIR_READABLE_LAYERS),
    "export.chip_plan.CHIP_RULES": lambda: set(CHIP_RULES),
}

# chip-side tables keyed by the on-chip synapse kind a synaptic layer becomes (export.chip_plan.SYNAPSE_KINDS)
SYNAPSE_KIND_TABLES = {
    "export.loihi_cuba.SYNAPTIC_SUMS": lambda: set(SYNAPTIC_SUMS),
    "export.netx_export.NETX_LAYER_WRITERS": lambda: set(NETX_LAYER_WRITERS),
    "export.lava_sim.LAVA_SYNAPSES": lambda: set(LAVA_SYNAPSES),
    "export.lava_sim.COPIES": lambda: set(COPIES),
}


def missing_rows() -> list[str]:
    """What adding a layer kind still needs: one entry per (layer class or chip synapse kind, table) without a row."""
    missing = [f"{cls.__name__} in {table}" for table, rows in LAYER_TABLES.items() for cls in LAYER_CLASSES
               if cls not in rows()]
    kinds = sorted({rule.kind for rule in CHIP_RULES.values() if rule.kind is not None})
    missing += [f"synapse kind {kind!r} in {table}" for table, rows in SYNAPSE_KIND_TABLES.items() for kind in kinds
                if kind not in rows()]
    return missing

EXAMPLES = {Dense: Dense(3), Conv: Conv(2, 3, stride=2, padding=1), Pool: Pool(2, "sum"), Flatten: Flatten()}


def test_every_layer_class_has_a_row_in_every_backend_table():
    missing = missing_rows()
    assert not missing, "missing rows: " + "; ".join(missing)
    assert {rule.kind for rule in CHIP_RULES.values() if rule.kind is not None} == set(SYNAPSE_KINDS)
    assert "input" in NETX_LAYER_WRITERS  # the host layer of a direct-input network


def test_the_walk_names_a_missing_row(monkeypatch):
    monkeypatch.delitem(MAPPING_RULES, Pool)
    monkeypatch.delitem(LAVA_SYNAPSES, "conv")
    assert missing_rows() == ["Pool in hw_models.mapping.MAPPING_RULES", "synapse kind 'conv' in "
                              "export.lava_sim.LAVA_SYNAPSES"]


def test_rows_match_the_layer_role():
    """Synaptic layers count fan-out and become a chip synapse kind; pass-through layers pull fan-out back and are
    folded into the next synaptic layer."""
    for cls in LAYER_CLASSES:
        fan_out, chip = FAN_OUT_RULES[cls], CHIP_RULES[cls]
        if cls.synaptic:
            assert fan_out.count is not None and chip.kind is not None and chip.fold is not None, cls
        else:
            assert fan_out.pull_back is not None and chip.kind is None and chip.note, cls


@pytest.mark.parametrize("cls", LAYER_CLASSES)
def test_every_layer_class_owns_its_meaning(cls):
    assert issubclass(cls, LayerBase) and dataclasses.is_dataclass(cls)
    assert cls.output_shape is not LayerBase.output_shape, f"{cls.__name__} must compute its own output shape"
    assert LAYER_TYPES[cls.type_name] is cls
    layer = EXAMPLES[cls]
    data = layer.to_dict()
    assert data["type"] == cls.type_name
    in_shape = (128,) if cls is Dense else (2, 8, 8)
    after = (Dense(4),) if len(layer.output_shape(in_shape)) == 1 else (Flatten(), Dense(4))
    spec = ModelSpec(in_shape, (layer, *after), 4)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.layer_shapes()[0] == layer.output_shape(in_shape)


def test_setting_tables_match_their_choices():
    assert set(READOUT_REDUCERS) == set(READOUT_REDUCTIONS)
    assert set(NEURON_CELLS) == set(CELL_TYPES)
