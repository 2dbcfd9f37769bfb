"""Old home of the Loihi quantisation-aware layers and grids: now :mod:`neurosynth.hardware.targets.loihi_qat`.

This name stays importable (``from neurosynth.hardware.lava import qat``) and *is* that module (same objects).
"""

import sys

from ..targets import loihi_qat as _module

sys.modules[__name__] = _module
