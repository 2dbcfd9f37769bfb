"""Package discovery with the folder mapping the project layout needs.

The top-level folders ``datasets/``, ``hardware/`` and ``apps/`` install as ``neurosynth.datasets``,
``neurosynth.hardware`` and ``neurosynth.apps`` (their bare names would collide with Hugging Face ``datasets`` and
are too generic). ``apps/`` (the command line, the demo, the recipes) is the top layer: it may import everything.
Works for regular and editable (``pip install -e``) installs.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["neurosynth", "neurosynth.*", "snn_nas", "snn_nas.*"])
package_dir = {}
for folder, alias in (("datasets", "neurosynth.datasets"), ("hardware", "neurosynth.hardware"), ("apps", "neurosynth.apps")):
    package_dir[alias] = folder
    packages += [alias] + [f"{alias}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir, package_data={"neurosynth": ["py.typed", "_csrc/*.cpp"]})
