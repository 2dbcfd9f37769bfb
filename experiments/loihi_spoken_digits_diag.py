"""What holds the Loihi spoken-digits model back? Validation-only diagnostics (issue 21; nothing is chosen by them).

Trains, on the generated spoken digits' train split, one of:

* ``--model loihi``: the Loihi-exact recurrent network of ``examples/train_shd.py --loihi`` (8-bit QAT, zero reset,
  one-step delays, spiking outputs read out by spike count);
* ``--model float``: the same layer sizes in float (``train_shd.build_model``: recurrent LIF with zero reset, no
  quantisation, no delays), with spiking outputs (``--readout lif``) or a leaky-integrator readout scored by its
  mean membrane (``--readout li``, what Loihi's spiking output layer cannot be);

on the example's onset-aligned 10 ms input (``apps/recipes/audio.py``) given as binary spikes (``--input binary``,
what the Loihi model sees), as counts (``counts``) or as ``--levels`` thermometer lines (``thermo``), with the
loss ``count_mse`` (the recipe's), ``scaled_ce`` (cross-entropy on the output spike rate x ``--scale``) or
``mean_ce`` (mean membrane, ``--readout li`` only), and writes one JSON line per epoch (train and validation
loss and accuracy) to ``--log``. ``--summarize LOG ...`` prints the best validation accuracy of each log.

    python experiments/loihi_spoken_digits_diag.py --data-root DATA --model float --readout li --loss mean_ce \\
        --input counts --epochs 20 --log runs/diag/float_li_counts.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class ScaledRateCE:
    """Cross-entropy on the output spike rate times ``scale`` (spike counts as logits overflow at T = 70)."""

    def __init__(self, scale: float):
        self.scale = float(scale)

    def __call__(self, out, y):
        import torch.nn.functional as F

        return F.cross_entropy(out.mean(0) * self.scale, y)

    def predict(self, out):
        return out.sum(0).argmax(-1)


def summarize(logs: list[str]) -> int:
    for log in logs:
        rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
        best = max(rows, key=lambda r: r["val_accuracy"])
        print(f"{Path(log).stem}: best validation {best['val_accuracy']:.4f} at epoch {best['epoch']} of {len(rows)}; "
              f"last training accuracy {rows[-1]['train_accuracy']:.4f}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=None, help="folder holding SpokenDigits/ (neurosynth data generate)")
    p.add_argument("--model", choices=["loihi", "float"], default="loihi")
    p.add_argument("--readout", choices=["lif", "li"], default="lif", help="--model float: the output layer")
    p.add_argument("--loss", choices=["count_mse", "scaled_ce", "mean_ce"], default="count_mse")
    p.add_argument("--scale", type=float, default=10.0, help="scaled_ce: logits = spike rate x this")
    p.add_argument("--input", choices=["binary", "counts", "thermo"], default="binary")
    p.add_argument("--levels", type=int, default=4, help="--input thermo: binary lines per channel")
    p.add_argument("--channels", type=int, default=140)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", default=None, help="JSON lines, one per epoch (required unless --summarize)")
    p.add_argument("--summarize", nargs="+", default=None, metavar="LOG")
    a = p.parse_args(argv)
    if a.summarize:
        return summarize(a.summarize)
    if not (a.log and a.data_root):
        p.error("--data-root and --log are required")
    if a.loss == "mean_ce" and not (a.model == "float" and a.readout == "li"):
        p.error("--loss mean_ce needs --model float --readout li (a membrane readout)")

    import torch
    from torch.utils.data import DataLoader

    from neurosynth.apps.recipes import audio
    from neurosynth.datasets import collate_time_first
    from neurosynth.hardware.targets.loihi_qat import scale_synapses
    from neurosynth.losses import CountMSE, MeanMembraneCE
    from neurosynth.training import fit

    sys.path.insert(0, str(EXAMPLES))
    from train_shd import build_loihi_model, build_model

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    levels = a.levels if a.input == "thermo" else 1
    inp = audio.AudioInput(dt_ms=10.0, window_ms=700.0, channels=a.channels, align="onset", onset_frac=0.1,
                           pre_ms=30.0, binary=a.input != "counts", levels=levels)
    train = audio.Augment(audio.load_audio("spoken_digits", a.data_root, "train", inp), 2, 0, g)
    valid = audio.load_audio("spoken_digits", a.data_root, "valid", inp)

    tl = DataLoader(train, batch_size=64, shuffle=True, generator=g, collate_fn=collate_time_first)
    vl = DataLoader(valid, batch_size=200, collate_fn=collate_time_first)
    n_in = inp.width
    if a.model == "float":
        model = build_model(a.hidden, n_in=n_in, arch="recurrent", reset="zero", readout=a.readout, layers=a.layers)
    else:
        model = scale_synapses(build_loihi_model(a.hidden, n_in=n_in, layers=a.layers), 3.0)
    loss = {"count_mse": CountMSE(), "scaled_ce": ScaledRateCE(a.scale), "mean_ce": MeanMembraneCE()}[a.loss]
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(a.log, "w") as log:
        def on_epoch(epoch, h):
            row = {"epoch": epoch + 1, **{k: v[-1] for k, v in h.items() if k != "epoch" and v},
                   "wall": round(time.time() - t0, 1), "args": vars(a)}
            log.write(json.dumps(row) + "\n")
            log.flush()

        fit(model, tl, epochs=a.epochs, lr=a.lr, loss=loss, val_loader=vl, progress=False, on_epoch_end=on_epoch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
