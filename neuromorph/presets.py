"""Named networks with their training recipe: ``neuromorph train --preset NAME``, ``neuromorph presets``.

A preset is data: the dataset it is made for, a builder of its :class:`~neuromorph.spec.ModelSpec` from the data's
input shape and class count, and the training settings (:class:`~neuromorph.config.TrainConfig` fields) of its
recipe. Flags given on the command line override the recipe's settings; the model is the preset's.

The recipe choices (BatchNorm, T, time constants, learning rate and schedule) were each measured on their own; the
README's "Training recipe" table gives the figures and ``examples/recipe_ablation.py`` reruns them.

Residual networks (the paper's ResNet18) are not offered: a skip connection joins two populations' spikes, which the
feed-forward model structure (:mod:`neuromorph.structure`: one synaptic layer, then one population, per block) and
its exporters do not represent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from neuromorph.errors import lookup
from neuromorph.spec import Conv, Dense, Flatten, Layer, ModelSpec, NeuronSpec, Pool, ReadoutSpec

SpecBuilder = Callable[[tuple[int, ...], int], ModelSpec]

# Fast dynamics for few time steps: with dt = 1 ms, tau_mem_inv 500/s leaks half the voltage per step and
# tau_syn_inv 1000/s passes each step's input current in full (measured: +12 points after one epoch on the
# Fashion-MNIST CNN against Norse's defaults 100/s and 200/s).
FAST_NEURON = NeuronSpec(tau_mem_inv=500.0, tau_syn_inv=1000.0)
FAST_READOUT = ReadoutSpec(tau_mem_inv=500.0, tau_syn_inv=1000.0)


def conv_stack(plan: tuple[int | str, ...], kernel_size: int = 3, batch_norm: bool = True) -> list[Layer]:
    """VGG-style layers: an int is a ``kernel_size`` convolution with that many channels (padding keeps the size),
    ``"P"`` a 2 x 2 average pool of spikes."""
    layers: list[Layer] = []
    for item in plan:
        if item == "P":
            layers.append(Pool(2, "avg"))
        else:
            layers.append(Conv(int(item), kernel_size, padding=kernel_size // 2, batch_norm=batch_norm))
    return layers


def _network(name: str, plan: tuple[int | str, ...], hidden: tuple[int, ...], time_steps: int,
             neuron: NeuronSpec = FAST_NEURON, readout: ReadoutSpec = FAST_READOUT) -> SpecBuilder:
    def build(input_shape: tuple[int, ...], num_classes: int) -> ModelSpec:
        layers = conv_stack(plan) + [Flatten()] + [Dense(h, batch_norm=True) for h in hidden] + [Dense(num_classes)]
        return ModelSpec(input_shape=tuple(input_shape), layers=tuple(layers), num_classes=num_classes, name=name,
                         time_steps=time_steps, neuron=neuron, readout=readout)
    return build


def _mlp(name: str, hidden: tuple[int, ...], time_steps: int) -> SpecBuilder:
    def build(input_shape: tuple[int, ...], num_classes: int) -> ModelSpec:
        layers = [Flatten(), *[Dense(h, batch_norm=True) for h in hidden], Dense(num_classes)]
        return ModelSpec(input_shape=tuple(input_shape), layers=tuple(layers), num_classes=num_classes, name=name,
                         time_steps=time_steps, neuron=FAST_NEURON, readout=FAST_READOUT)
    return build


@dataclass(frozen=True)
class Preset:
    """A named network and its recipe. ``settings`` are TrainConfig fields; ``reached`` says what it was measured
    to reach, on what (empty where it was not trained to the end here)."""

    name: str
    description: str
    dataset: str
    build: SpecBuilder
    settings: Mapping[str, Any] = field(default_factory=dict)
    reached: str = ""

    def spec(self, input_shape: tuple[int, ...], num_classes: int) -> ModelSpec:
        return self.build(tuple(input_shape), num_classes)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # T = 2: as accurate as T = 4 (91.42 +- 0.21 against 91.31 +- 0.15 %, 3 seeds each) at 1.8x fewer synaptic
    # operations (README, "Fewer time steps")
    Preset("fashion-cnn", "32c3-BN-p2-64c3-BN-p2-10, T = 2: the CPU-budget Fashion-MNIST CNN", "fashion-mnist",
           _network("fashion-cnn", (32, "P", 64, "P"), (), time_steps=2),
           {"epochs": 6, "lr": 3e-3, "lr_schedule": "cosine", "batch_size": 128},
           reached="91.42 +- 0.21 % (3 seeds; CPU, 2026-12-04)"),
    # T = 2: as accurate as T = 8 (98.34 +- 0.10 against 98.36 +- 0.08 %, 3 seeds each) at a quarter of the
    # synaptic operations and of the Loihi energy (README, "Fewer time steps")
    # random shifts: 98.55 +- 0.11 against 98.34 +- 0.10 % without, at 11 % fewer synaptic operations (3 seeds each)
    Preset("mnist-mlp", "784-400-200-10 with BatchNorm, T = 2, random shifts", "mnist",
           _mlp("mnist-mlp", (400, 200), time_steps=2),
           {"epochs": 15, "lr": 3e-3, "lr_schedule": "cosine", "batch_size": 128, "augment": "crop"},
           reached="98.55 +- 0.11 % (3 seeds; CPU, 2026-12-04)"),
    Preset("cnn7", "7 synaptic layers: 64c3-64c3-p2-128c3-128c3-p2-256c3-p2-256-10, BN, T = 4 (our widths: the "
           "paper's are not given here); for a GPU", "fashion-mnist",
           _network("cnn7", (64, 64, "P", 128, 128, "P", 256, "P"), (256,), time_steps=4),
           {"epochs": 30, "lr": 1e-3, "lr_schedule": "cosine", "weight_decay": 1e-4, "augment": "crop",
            "batch_size": 128}),
    Preset("vgg11", "VGG11 (64-p-128-p-256-256-p-512-512-p-512-512-p-10), BN, T = 4, for CIFAR-10 on a GPU",
           "cifar10", _network("vgg11", (64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"), (),
                               time_steps=4),
           {"epochs": 100, "lr": 1e-3, "lr_schedule": "cosine", "weight_decay": 5e-4, "augment": "flip-crop",
            "batch_size": 64}),
)}


def get_preset(name: str) -> Preset:
    return lookup(PRESETS, name, "preset")
