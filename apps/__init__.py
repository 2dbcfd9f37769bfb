"""The application layer: the ``neurosynth`` command line (:mod:`.cli`), the end-to-end demo (:mod:`.demo`), the
recipes that train and evaluate on a dataset and write run directories (:mod:`.recipes`) and the DDP entry
point (:mod:`.ddp`).

This is the only layer that imports every part: the core (the ``neurosynth/`` folder) imports none of
``snn_nas``, ``neurosynth.hardware``, ``neurosynth.datasets`` or ``neurosynth.apps``; ``neurosynth.datasets`` and
``neurosynth.hardware`` import only the core; ``snn_nas`` imports the core and ``neurosynth.datasets``.
"""
