"""Package discovery with the folder mapping the project layout needs.

The top-level folders ``datasets/`` and ``hardware/`` install as ``neurosynth.datasets`` and
``neurosynth.hardware`` (their bare names would collide with Hugging Face ``datasets`` and are too generic).
Works for regular and editable (``pip install -e``) installs.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["neurosynth", "neurosynth.*", "snn_nas", "snn_nas.*"])
package_dir = {}
for folder, alias in (("datasets", "neurosynth.datasets"), ("hardware", "neurosynth.hardware")):
    package_dir[alias] = folder
    packages += [alias] + [f"{alias}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir, package_data={"neurosynth": ["py.typed", "_csrc/*.cpp"]})
