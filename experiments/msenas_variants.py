"""Exploratory variants of the RDM fitness, re-scored on the architectures of msenas_correlation.py.

Reads ``OUT/results.jsonl`` (specs + test accuracies written by ``experiments/msenas_correlation.py``), rebuilds
each architecture with the same seed, and prints Kendall tau with test accuracy for variants of the label-RDM
agreement (all layers / last cell / last cell's outputs / readout input / Spearman / per-layer mean, max).

    python experiments/msenas_variants.py runs/msenas_corr --seed 0
    python experiments/msenas_variants.py runs/msenas_corr_s1 --seed 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="output directory of msenas_correlation.py")
    p.add_argument("--seed", type=int, default=0, help="the --seed of that run")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--T", type=int, default=4)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from scipy.stats import kendalltau

    from snn_nas.engine.space import derive_seed
    from snn_nas.mse.data import fitness_batch, load_task
    from snn_nas.mse.evaluator import build_seeded
    from snn_nas.mse.fitness import hamming_rdm, label_rdm, layer_patterns, network_rdm, rdm_correlation

    rows = [json.loads(line) for line in (Path(args.run) / "results.jsonl").read_text().splitlines()]
    task = load_task("digits", T=args.T, conv=True, seed=args.seed, encoding="direct")
    x, y = fitness_batch(task, args.batch, args.seed)
    R = label_rdm(y)
    acc = np.array([r["test_accuracy"] for r in rows])
    V: dict[str, list[float]] = {}
    for r in rows:
        m = build_seeded(r["spec"], derive_seed(args.seed, r["hash"])).train()
        feats: dict[str, torch.Tensor] = {}
        h = m.head.register_forward_hook(lambda mod, inp, out, store=feats: store.__setitem__("head_in", inp[0]))
        with torch.no_grad():
            _, rec = m(x, record=True)
        h.remove()
        last = f"cell{len(r['spec']['cells']) - 1}."
        outs = r["spec"]["cells"][-1]["motif"]["outputs"]
        last_cell = {k: v for k, v in rec.items() if k.startswith(last)}
        last_out = {k: v for k, v in last_cell.items() if int(k.split(".n")[1]) in outs}
        z = feats["head_in"].reshape(x.shape[0], x.shape[1], -1).sum(0).double()
        cos = 1 - torch.nn.functional.cosine_similarity(z[:, None], z[None], dim=-1)
        per_layer = [rdm_correlation(hamming_rdm(p), R) for p in layer_patterns(rec)]
        for name, v in {
            "all_layers (default)": rdm_correlation(network_rdm(rec), R),
            "all_layers_spearman": rdm_correlation(network_rdm(rec), R, "spearman"),
            "last_cell": rdm_correlation(network_rdm(last_cell), R),
            "last_cell_outputs": rdm_correlation(network_rdm(last_out), R),
            "readout_input_euclid": rdm_correlation(torch.cdist(z, z), R),
            "readout_input_cosine": rdm_correlation(cos, R),
            "mean_layer_agreement": float(np.mean(per_layer)),
            "max_layer_agreement": float(np.max(per_layer)),
        }.items():
            V.setdefault(name, []).append(v)
    taus = {n: float(kendalltau(np.nan_to_num(np.array(v), nan=-1.0), acc)[0]) for n, v in V.items()}
    taus["params"] = float(kendalltau([r["params"] for r in rows], acc)[0])
    for n, t in taus.items():
        print(f"{n:24s} tau = {t:+.3f}")
    return taus


if __name__ == "__main__":
    main()
