"""Core mapping: per-core synapse counts add up to the exact fan-out; each limit binds where it should."""

from __future__ import annotations

import math

import pytest
import torch

from hw_models.fanout import consumer_fan_out, spike_sources
from hw_models.loihi import LOIHI1_CORE, LOIHI2_CORE, LOIHI_SYNAPSE_FORMAT
from hw_models.mapping import core_owner, map_cores, synapses_into_cores
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, ModelSpec, Pool, mlp_spec


@pytest.mark.parametrize("cores", [1, 3, 7])
def test_per_core_synapses_sum_to_fan_out(strided_cnn_spec, cores):
    for source in spike_sources(strided_cnn_spec, include_input=True):
        chain = strided_cnn_spec.layers[source.chain[0] : source.chain[1]]
        counts = synapses_into_cores(chain, source.shape, cores)
        assert counts.shape == (cores, *source.shape)
        assert torch.equal(counts.sum(dim=0), consumer_fan_out(chain, source.shape))


def test_channels_last_split():
    owner = core_owner((2, 2, 2), 2)  # channels-last order: (y, x, c) -> positions (0,0),(0,1) on core 0
    assert owner.reshape(2, 2, 2)[:, 0, :].tolist() == [[0, 0], [0, 0]]
    assert owner.reshape(2, 2, 2)[:, 1, :].tolist() == [[1, 1], [1, 1]]


def test_nengo_loihi_bits_per_axon():
    fmt = LOIHI_SYNAPSE_FORMAT
    assert fmt.bits_per_axon(64) == 576  # 64 * 8 + 10 = 522 -> 9 words
    assert fmt.bits_per_axon(400) == 6 * 576 + 192  # 6 full groups, then 16 * 8 + 10 = 138 -> 3 words
    assert fmt.bits_per_axon(5, index_bits=fmt.index_bits(100)) == 128  # sparse: 5 * (8 + 7) + 10 = 85 -> 2 words
    assert fmt.index_bits(64) == 6 and fmt.index_bits(100) == 7 and fmt.index_bits(1024) == 10


def test_mnist_mlp_is_bound_by_synapse_memory():
    """784 -> 400: every core holds all 784 axons; 784 * bits_per_axon(m) <= 1 Mbit allows m <= 142 neurons."""
    mapping = map_cores(mlp_spec(hidden=(400,)), LOIHI1_CORE)
    lif1, readout = mapping.layers
    assert lif1.binding == "synapse memory" and lif1.cores == 3 and lif1.neurons_per_core == 134
    limit = LOIHI1_CORE.synapse_memory_bits_per_core
    assert 784 * LOIHI_SYNAPSE_FORMAT.bits_per_axon(142) <= limit < 784 * LOIHI_SYNAPSE_FORMAT.bits_per_axon(143)
    assert lif1.synapse_bits_per_core == 784 * LOIHI_SYNAPSE_FORMAT.bits_per_axon(134)
    assert readout.cores == 1 and mapping.total_cores == 4 and mapping.chips == 1
    assert torch.all(mapping.destination_cores["input"] == 3) and torch.all(mapping.destination_cores["lif1"] == 1)


def test_neuron_limit_binds_and_differs_between_chips():
    spec = ModelSpec(input_shape=(4,), layers=(Dense(3000), Dense(2)), num_classes=2, time_steps=2)
    assert map_cores(spec, LOIHI1_CORE).layer("lif1").cores == math.ceil(3000 / 1024)
    assert map_cores(spec, LOIHI1_CORE).layer("lif1").binding == "neurons"
    assert map_cores(spec, LOIHI2_CORE).layer("lif1").cores == 1


def test_output_axons_bind_for_wide_conv_fan_out():
    spec = ModelSpec(input_shape=(1, 28, 28), layers=(Conv(16, 5), Pool(2), Conv(32, 5), Flatten(), Dense(10)),
                     num_classes=10, time_steps=2)
    mapping = map_cores(spec, LOIHI1_CORE)
    lif1 = mapping.layer("lif1")
    assert lif1.binding == "output axons" and lif1.output_axons_per_core <= LOIHI1_CORE.output_axons_per_core
    for layer in mapping.layers:
        assert layer.neurons_per_core <= LOIHI1_CORE.neurons_per_core
        assert layer.input_axons_per_core <= LOIHI1_CORE.input_axons_per_core
        assert layer.synapse_bits_per_core <= LOIHI1_CORE.synapse_memory_bits_per_core
        assert layer.cores == max(layer.cores_needed.values())


def test_a_layer_that_cannot_fit_is_refused():
    spec = ModelSpec(input_shape=(5000,), layers=(Dense(4), Dense(2)), num_classes=2, time_steps=2)
    with pytest.raises(NeuromorphError, match="does not fit on loihi1 cores"):
        map_cores(spec, LOIHI1_CORE)
