"""snn_nas: spiking neural architecture search (MSE-NAS, BioNAS) on top of the ``neurosynth`` core.

Importing it registers ``snn_nas`` as an ArchSpec plugin package, so specs whose ``"plugin"`` is a
``snn_nas`` module (MSE-NAS DAGs, BioNAS models) build; installed, the ``neurosynth.plugins`` entry point in
``pyproject.toml`` does the same without the import.
"""

from neurosynth.arch import register_plugin_package

register_plugin_package("snn_nas")
