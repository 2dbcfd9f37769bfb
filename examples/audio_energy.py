"""Energy per inference: a trained recurrent SNN (Loihi cost model) vs a GRU of similar accuracy on the same
features (45 nm FP32 MAC cost model), on spoken_digits or SHD.

The SNN is a run directory of ``examples/train_shd.py``; its inputs are prepared as its manifest records (window,
binning, channels, onset alignment; binary spikes for ``--loihi`` runs). The GRU (``nn.GRU(C, H)`` on log counts
-> last state -> ``Linear(H, 20)``) is trained here on the same inputs of the training split, at the SNN's ``T``
and, with ``--gru-T``, at a coarser binning of the same window; its epoch is chosen on the validation split
(spoken_digits: its ``valid`` voices; other datasets: a seeded tenth of the training data) and its test accuracy
read once. Both are priced with the per-operation costs of ``neurosynth.hardware.energy`` (arithmetic only, see
``docs/hardware_nir_energy.md``):

- SNN on Loihi: every input spike costs fan-out synaptic ops (a bin holding c spikes of a channel costs c x 128 for
  a C -> 128 layer: binned inputs are spike counts, which ``count_ops`` would otherwise call MACs), plus the
  spike-triggered ops of the recurrent and readout layers (``count_ops``), at 23.6 pJ, plus every neuron update
  (T x neurons) at 81 pJ.
- GRU: 3 H (C + H) MACs per time step (dense: what a GPU executes), plus H x 20 for the readout, at 4.6 pJ
  (FP32) and 0.23 pJ (INT8). Gate nonlinearities and element-wise products are not counted (they would add).

It also writes ``inputs.pt`` (the test inputs at the SNN's T) so that ``neurosynth energy --model RUN --inputs
OUT/inputs.pt`` prints the package's standard report for the same SNN:

    python examples/audio_energy.py --snn runs/sd_rec --out runs/sd_energy
"""

from __future__ import annotations

import argparse
import sys
import time


def parse_args(argv=None):
    from neurosynth.apps.cli import ScriptHelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=ScriptHelpFormatter)
    p.add_argument("--data-root", default=None,
                   help="the folder holding the run's dataset, if it moved (default: the run's --data-root)")
    p.add_argument("--snn", required=True, metavar="RUN_DIR", help="run directory of examples/train_shd.py")
    p.add_argument("--gru-hidden", type=int, default=64)
    p.add_argument("--gru-T", type=int, nargs="*", default=[], help="extra (coarser) binnings to train the GRU at")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/audio_energy")
    p.add_argument("--force", action="store_true", help="overwrite the files of an earlier run in --out")
    return p.parse_args(argv)


def gru_model(hidden: int, n_in: int = 700, n_out: int = 20, log_inputs: bool = True):
    import torch
    from torch import nn

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(n_in, hidden)
            self.out = nn.Linear(hidden, n_out)

        def forward(self, x):  # x [T, B, C] -> logits [B, 20]
            _, h = self.gru(torch.log1p(x) if log_inputs else x)  # a --log-input run's inputs are logs already
            return self.out(h[-1])

    return GRUClassifier()


def gru_macs(T: int, hidden: int, n_in: int = 700, n_out: int = 20) -> int:
    return T * 3 * hidden * (n_in + hidden) + hidden * n_out


def train_gru(train, valid, test, T, args, n_in: int = 700, n_out: int = 20, log_inputs: bool = True):
    """The GRU trained for ``args.epochs`` on ``train``; the epoch with the best accuracy on ``valid`` is kept and
    its ``test`` accuracy read once."""
    import copy

    import torch
    from torch.utils.data import DataLoader

    from neurosynth.datasets import collate_time_first
    from neurosynth.utils import seed_all

    g = seed_all(args.seed)
    model = gru_model(args.gru_hidden, n_in, n_out, log_inputs)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    tl = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g, collate_fn=collate_time_first)
    vl = DataLoader(valid, batch_size=256, collate_fn=collate_time_first)
    best, history = (-1.0, 0, None), []
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        for x, y, _ in tl:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        acc = accuracy(model, vl)
        history.append(round(acc, 4))
        if acc > best[0]:
            best = (acc, epoch + 1, copy.deepcopy(model.state_dict()))
    seconds = time.perf_counter() - t0
    model.load_state_dict(best[2])
    test_acc = accuracy(model, DataLoader(test, batch_size=256, collate_fn=collate_time_first))
    return {"T": T, "hidden": args.gru_hidden, "inputs": n_in, "test_accuracy": test_acc,
            "chosen_epoch": best[1], "val_accuracy": best[0], "val_history": history,
            "selection_rule": "the epoch with the best validation accuracy; test read once",
            "epochs": args.epochs, "train_seconds": seconds, "macs_per_inference": gru_macs(T, args.gru_hidden, n_in,
                                                                                             n_out)}


def accuracy(model, loader) -> float:
    import torch

    model.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y, _ in loader:
            correct += int((model(x).argmax(1) == y).sum())
            n += len(y)
    return correct / n


def snn_loihi(model, x, y, loss: str = "max_membrane_ce") -> dict:
    """Counts and Loihi energy of the SNN on the test inputs ``x [T, N, 700]`` (input spikes priced as ACs)."""
    import torch

    from neurosynth.hardware.energy import count_ops, get_cost_model

    counts = count_ops(model, x)
    first = counts.layers[0]
    w = model[0].weight
    fanout = (w != 0).sum(0).to(torch.float64)  # synapses leaving each input channel
    input_acs = float((x.to(torch.float64).sum((0, 1)) * fanout).sum()) / x.shape[1]
    rest_acs = counts.syn_ops  # spike-triggered ops of the layers whose inputs are binary
    layer0_acs_if_binary = first.ac_ops / counts.samples
    syn = input_acs + rest_acs - layer0_acs_if_binary
    lo = get_cost_model("loihi")
    e = syn * lo.e_ac_pj * 1e-12 + counts.neuron_updates * lo.e_neuron_update_pj * 1e-12
    with torch.no_grad():
        out = model(x)
    from neurosynth.losses import get_loss

    acc = float((get_loss(loss).predict(out) == y).float().mean())
    return {"T": int(x.shape[0]), "test_accuracy": acc, "input_spikes": float(x.sum()) / x.shape[1],
            "synaptic_ops": syn, "input_synaptic_ops": input_acs, "neuron_updates": counts.neuron_updates,
            "hidden_spikes": counts.spikes, "energy_j": e,
            "energy_terms_j": {"synaptic_ops": syn * lo.e_ac_pj * 1e-12,
                               "neuron_updates": counts.neuron_updates * lo.e_neuron_update_pj * 1e-12}}


def validation_split(cfg: dict, data_root, train, steps: int, seed: int):
    """spoken_digits: its ``valid`` voices; other datasets: a seeded tenth of ``train`` (the rest is returned as the
    training set). Returns ``(train, valid, description)``."""
    import torch
    from torch.utils.data import Subset

    from neurosynth.apps.recipes.audio import load_run_split

    if cfg.get("dataset") == "spoken_digits":
        return train, load_run_split(cfg, "valid", data_root=data_root, steps=steps), "the dataset's valid voices"
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, len(train) // 10)
    return Subset(train, perm[k:]), Subset(train, perm[:k]), f"a random tenth of the training split (seed {seed})"


def main(argv=None) -> int:
    args = parse_args(argv)
    from pathlib import Path

    import torch

    from neurosynth.apps.recipes.audio import load_run_split
    from neurosynth.datasets import collate_time_first
    from neurosynth.errors import UserError
    from neurosynth.hardware.energy import get_cost_model
    from neurosynth.io import atomic_write, read_json, write_json
    from neurosynth.rundir import load_run

    if not (Path(args.snn) / "manifest.json").is_file():
        raise UserError(f"{args.snn} is not a run directory of examples/train_shd.py (no manifest.json); pass "
                        f"--snn RUN_DIR of a finished run")
    if args.epochs < 1 or args.gru_hidden < 1 or any(t < 1 for t in args.gru_T):
        raise UserError("--epochs, --gru-hidden and every --gru-T must be positive integers")
    out = Path(args.out)
    mine = [out / "energy_comparison.json", out / "inputs.pt"]
    if not args.force and any(f.exists() for f in mine):
        raise UserError(f"{out} already holds an energy comparison; pass --force to overwrite it, or another --out")
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    cfg = read_json(Path(args.snn) / "manifest.json")["config"]
    model, _, _ = load_run(args.snn)
    model.eval()
    test = load_run_split(cfg, "test", data_root=args.data_root)
    x, y, _ = collate_time_first([test[i] for i in range(len(test))])
    T, n_in = int(x.shape[0]), int(x.shape[-1])
    n_out = int(model(x[:, :1]).shape[-1])
    with atomic_write(out / "inputs.pt", "wb", encoding=None) as f:
        torch.save({"x": x}, f)
    snn = snn_loihi(model, x, y, cfg.get("loss", "max_membrane_ce"))
    print(f"SNN (T={T}, {n_in} inputs): accuracy {snn['test_accuracy']:.3f}, {snn['synaptic_ops']:,.0f} synaptic ops, "
          f"{snn['neuron_updates']:,.0f} neuron updates -> {snn['energy_j'] * 1e6:.2f} uJ on Loihi")
    grus = []
    for gT in [T, *args.gru_T]:
        train = load_run_split(cfg, "train", data_root=args.data_root, steps=gT)
        train, valid, val_desc = validation_split(cfg, args.data_root, train, gT, args.seed)
        te = test if gT == T else load_run_split(cfg, "test", data_root=args.data_root, steps=gT)
        r = train_gru(train, valid, te, gT, args, n_in, n_out, not (cfg.get("input") or {}).get("log1p"))
        r["validation"] = val_desc
        for cm in ("cmos45_fp32", "cmos45_int8"):
            r[f"energy_j_{cm}"] = r["macs_per_inference"] * get_cost_model(cm).e_mac_pj * 1e-12
        r["fp32_over_snn_loihi"] = r["energy_j_cmos45_fp32"] / snn["energy_j"]
        r["int8_over_snn_loihi"] = r["energy_j_cmos45_int8"] / snn["energy_j"]
        grus.append(r)
        print(f"GRU (T={gT}, H={args.gru_hidden}): accuracy {r['test_accuracy']:.3f} (epoch {r['chosen_epoch']} "
              f"chosen on {val_desc}), {r['macs_per_inference']:,} MACs -> {r['energy_j_cmos45_fp32'] * 1e6:.2f} uJ "
              f"FP32 ({r['fp32_over_snn_loihi']:.2f}x the SNN on Loihi), {r['energy_j_cmos45_int8'] * 1e6:.3f} uJ "
              f"INT8 ({r['int8_over_snn_loihi']:.2f}x)")
    doc = {"snn_run": str(args.snn), "dataset": cfg.get("dataset", "shd"),
           "data_root": str(args.data_root or cfg["data_root"]), "snn_input": cfg.get("input") or {"T": cfg.get("T")},
           "snn": snn, "gru": grus,
           "cost_models": {c: get_cost_model(c).to_dict() for c in ("loihi", "cmos45_fp32", "cmos45_int8")},
           "command": [sys.executable, *sys.argv] if argv is None else ["examples/audio_energy.py", *argv]}
    write_json(out / "energy_comparison.json", doc)
    print(f"wrote {out / 'energy_comparison.json'} and {out / 'inputs.pt'}; the standard report: "
          f"neurosynth energy --model {args.snn} --inputs {out / 'inputs.pt'}")
    return 0


if __name__ == "__main__":
    from neurosynth.errors import run_script

    sys.exit(run_script(main))
