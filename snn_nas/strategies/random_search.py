"""Random search: the baseline strategy (every candidate an independent ``space.sample(rng)``)."""

from __future__ import annotations

from snn_nas.engine.strategy import Strategy


class RandomSearch(Strategy):
    """Random search: every candidate is an independent ``space.sample(rng)``. The baseline."""

    name = "random"
    asynchronous = True  # tell order does not matter: usable by ASHA

    def ask(self, n: int) -> list[dict]:
        return [self.space.sample(self.rng) for _ in range(int(n))]
