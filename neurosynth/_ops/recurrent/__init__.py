"""Recurrent layer operator: per-step GEMM + a neuron op's step (see ``reference.py``)."""
