"""CubaLIF fused operator (see ``reference.py`` for the contract)."""
