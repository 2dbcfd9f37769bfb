"""End-to-end demo stages (``neurosynth demo``): each is ``stage(ctx)``; see :mod:`neurosynth.apps.cli.demo`."""
