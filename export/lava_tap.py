"""A Lava process that streams a Var (a neuron population's voltage) out of a running network, one array per step.

Lava's ``Monitor`` hands its recording back through ``Var.get``, which the runtime transfers one element per
message (lava-nc 0.10.0, ``Runtime.get_var``): reading ``steps x neurons`` values costs tens of microseconds each,
which dominated the simulation. ``VoltageTap`` reads the Var through a ``RefPort`` after every step (management
phase) and sends it in the next step's spike phase, where an ``Extractor`` passes it to the host as one array; so
the value received in step ``t + 1`` is the Var after step ``t``.

This module imports Lava at import time: import it only after :func:`neuromorph.lava_compat.install` (the Lava
runner does), never from ``export``'s or ``neuromorph``'s top level.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class VoltageTap(AbstractProcess):
    """Reads a Var of ``shape`` after every step; sends it on ``out`` in the next step."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(shape=shape)
        self.ref = RefPort(shape=shape)
        self.out = OutPort(shape=shape)
        self.last = Var(shape=shape, init=0)


@implements(proc=VoltageTap, protocol=LoihiProtocol)
@requires(CPU)
class PyVoltageTapModel(PyLoihiProcessModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    last: np.ndarray = LavaPyType(np.ndarray, float)

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        self.last = np.array(self.ref.read(), dtype=float)

    def run_spk(self) -> None:
        self.out.send(self.last)


MODELS = {VoltageTap: PyVoltageTapModel}
