from __future__ import annotations

import pytest

from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, EncoderSpec, ModelSpec, NeuronSpec, Pool, cnn_spec, mlp_spec


def test_round_trip_through_dict(tiny_cnn_spec, strided_cnn_spec):
    for spec in (tiny_cnn_spec, strided_cnn_spec, mlp_spec(neuron=NeuronSpec(cell="lifbox"),
                                                           encoder=EncoderSpec(kind="poisson"))):
        assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_shapes(tiny_cnn_spec):
    assert tiny_cnn_spec.layer_shapes() == [(4, 12, 12), (4, 6, 6), (6, 6, 6), (6, 3, 3), (54,), (12,), (4,)]


@pytest.mark.parametrize("make, message", [
    (lambda: ModelSpec((1, 4, 4), (Dense(3),), 3), "Flatten"),
    (lambda: ModelSpec((1, 4, 4), (Conv(2, 7),), 2), "last layer"),
    (lambda: cnn_spec(input_shape=(1, 4, 4), kernel_size=7), "does not fit"),
    (lambda: Pool(2, "max"), "Pool.mode"),
    (lambda: NeuronSpec(v_th=0.0, v_reset=0.5), "above v_reset"),
    (lambda: NeuronSpec(tau_mem_inv=float("nan")), "tau_mem_inv"),
    (lambda: mlp_spec(time_steps=0), "time_steps"),
    (lambda: ModelSpec.from_dict({**mlp_spec().to_dict(), "layers": [{"type": "lstm"}]}), "supported"),
    (lambda: ModelSpec.from_dict({**mlp_spec().to_dict(), "neuron": {"tau": 1}}), "unknown field"),
])
def test_invalid_descriptions_are_refused(make, message):
    with pytest.raises(NeuromorphError, match=message):
        make()
