"""A spike sink for Lava runs that hands its recording back through a memory-mapped file.

Why: Lava 0.10.0 reads a ``Var`` back (``var.get()``) one element at a time: the process model sends every
item as its own message to the runtime service, which forwards it to the runtime
(``PyLoihiProcessModel._get_var``: "FIXME: send a whole vector"). Reading the ``data`` of a sink
``RingBuffer`` of shape ``(*neurons, steps)`` therefore costs ``neurons x steps`` inter-process messages
(~25-40 us each on a loaded 2-core machine), which made the recording, not the simulation, the bulk of a
conv network's Lava run (measured in ``benchmarks/lava_run.py``).

:class:`SpikeRecorder` receives the same spikes on the same kind of port as the sink ``RingBuffer`` (it only
stores them) and writes step ``t`` into row ``t - 1`` of a ``[steps, *shape]`` uint8 ``numpy`` memmap that the
caller created (Lava forks its process models, so the child opens the file by path). Nothing in the network
changes: the synapse and neuron processes and their models are Lava's own.

Import this module only after :func:`~.compat.import_lava` (it defines Lava classes at import time).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeRecorder(AbstractProcess):
    """Sink: ``a_in`` (``shape``) -> ``np.memmap(path, uint8, 'r+', shape=(steps, *shape))[t - 1] = a_in != 0``."""

    def __init__(self, *, shape: tuple[int, ...], path: str, steps: int, name: str | None = None) -> None:
        super().__init__(shape=shape, path=str(path), steps=int(steps), name=name)
        self.shape = tuple(shape)
        self.a_in = InPort(shape=self.shape)


class _AbstractRecorderModel(PyLoihiProcessModel):
    a_in = None

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._mm = None

    def run_spk(self) -> None:
        data = self.a_in.recv()
        if self._mm is None:
            p = self.proc_params
            self._mm = np.memmap(p["path"], dtype=np.uint8, mode="r+", shape=(p["steps"], *p["shape"]))
        t = self.time_step - 1
        if t < self._mm.shape[0]:
            self._mm[t] = data != 0


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRecorderFloat(_AbstractRecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderFixed(_AbstractRecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)


MODELS = {"float": PySpikeRecorderFloat, "fixed": PySpikeRecorderFixed}
