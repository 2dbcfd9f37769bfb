"""``python -m neurosynth``: the same program as the ``neurosynth`` command.

The command line lives in the application layer (``apps/``, installed as ``neurosynth.apps``), one floor above
the core; the core imports nothing of it. This launcher only hands over to ``python -m neurosynth.apps``.
"""

import runpy

runpy.run_module("neurosynth.apps", run_name="__main__", alter_sys=True)
