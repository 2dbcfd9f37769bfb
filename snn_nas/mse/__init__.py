"""MSE-NAS: multi-scale evolutionary architecture search for spiking networks (see docs/msenas.md).

* :mod:`.space` -- ``MSESpace`` / ``MSESpaceConfig``: micro (neuron, E/I sign, kernel), meso (motif DAGs with
  typed edges), macro (motif wiring, stage widths, downsampling); ``validate_spec``.
* :mod:`.builder` -- ``MSENet``, registered as the ArchSpec kind ``"mse"`` (``neurosynth.arch.build(spec)``).
* :mod:`.fitness` -- training-free RDM scores (``FITNESSES``: ``rdm`` (readout RDM agreement × capacity), ``rdm_spikes``, ``dissimilarity``, ``snasnet``).
* :mod:`.evaluator` -- ``RDMFitnessEvaluator`` (``mse_rdm``) and ``TrainEvaluator`` (``mse_train``).
* :mod:`.run` -- ``SearchConfig`` / ``run_search`` (what ``neurosynth search mse`` runs); :mod:`.cli`, :mod:`.demo`.

Importing this package is cheap; torch-heavy modules load on first use.
"""
