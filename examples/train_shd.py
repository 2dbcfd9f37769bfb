"""Train a spiking network on the Spiking Heidelberg Digits (SHD) or the generated spoken digits.

SHD's defaults: 700 input channels -> Linear -> recurrent LIF hidden layer -> Linear -> 20 leaky-integrator (LI) readouts;
the class score is the maximum (``--readout max``) or the mean (``--readout mean``) of each readout
membrane over time (Cramer et al. 2022 used max-over-time). Standard preprocessing: spikes binned into
``--T`` steps spanning 1.4 s from t = 0 (100 steps of 14 ms by default).

    python examples/train_shd.py --data-root ~/data --epochs 30 --out runs/shd          # data in ~/data/SHD/
    python examples/train_shd.py --data-root ~/data --download ...                      # fetch it first

To hand the model to snnTorch or another NIR tool, train it with NIR's reset and a spiking readout, then export
(``export nir`` refuses the default subtract reset, and snnTorch 1.0 has no importer for the LI readout)::

    python examples/train_shd.py --data-root ~/data --reset zero --readout count --out runs/shd_nir
    neurosynth export nir --model runs/shd_nir --out shd.nir   # then snntorch.import_nir.import_from_nir

Writes a run directory like ``neurosynth train``: ``arch.json``, ``model.pt``, ``metrics.json``,
``manifest.json`` and ``plots/training.png``. The epoch is chosen on a validation split (``--dataset spoken_digits``:
its ``valid`` voices, unheard in training; SHD: ``--val-fraction``, default 0.1 of the training data, stratified by
class, ``--split-seed``) and the test split is read once, at the end; a checkpoint is written every epoch, and
``--resume RUN_DIR`` finishes an interrupted run with the result of an uninterrupted one (``docs/training.md``).

``--loihi`` trains the model Loihi 2 runs exactly (``neurosynth.hardware.targets.loihi_qat.loihi_rsnn_spec``): binary input
spikes, QLinear (8-bit grid) -> Delay(1) -> QRecurrent (LIF, or CubaLIF with ``--alpha``; zero reset; 8-bit
recurrent weights; one-step recurrent delay) -> QLinear -> Delay(1) -> spiking LIF output read out by spike count,
or with ``--loihi-readout voltage`` a non-leaky integrator output scored by its membrane after the last step (Loihi:
neurons that never fire, their ``v`` read once; loss ``final_membrane_ce``). ``--loihi-bias`` adds a learnable
per-neuron bias to each hidden layer (Loihi's neuron bias, netx ``bias``; plain LIF only). Every synapse carries
Lava's one-step delay. ``--loihi --arch ff`` makes the hidden layers feed-forward LIF (``loihi_mlp_spec``, netx
``dense``), and ``--loihi --arch delays`` feed-forward LIF whose synapses also learn a delay of 0..``--max-delay``-1
steps each (``QDelayedLinear``; netx ``delay``, Lava's ``DelayDense``; K <= 63); adLIF and ALIF have no Loihi
counterpart and are refused. ``--verify N`` then writes ``loihi.h5`` (netx ``dense_rec``, or ``dense``) into
the run directory and checks N test samples in Lava's simulator (float spike-exact vs torch, fixed point
bit-exact vs the integer reference; accuracies side by side) and estimates the energy per inference at ``--T``:

    python examples/train_shd.py --data-root ~/data --loihi --epochs 20 --verify 500 --out runs/shd_loihi

``--dataset spoken_digits`` trains on the synthetic spoken digits generated under ``DATA_ROOT/SpokenDigits``
(``neurosynth data generate spoken_digits --data-root DATA_ROOT``; SHD layout, test voices unseen in training) with
its recipe as the defaults (``RECIPES``; chosen on the validation voices, ``docs/recipe_spoken_digits.md``): an
onset-aligned 0.7 s window (host-side preprocessing, ``--align onset``), 20 ms bins of 140 channel groups, 2 x
recurrent adLIF 1024 with BatchNorm and dropout 0.3, log(1 + count) inputs, +-2-step time shifts, +-2-channel shifts
and speed changes of up to 25%, 60 epochs (92.43% test on the default files, mean of 3 seeds; the GRU baselines 90.1%
plain and 92.67% with the same augmentation, which stays ahead). With ``--loihi``: binary 10 ms bins of the 700 cochlea channels,
2 x feed-forward LIF 256 whose synapses learn delays of 0..110 ms (``--arch delays --max-delay 12``) with a neuron
bias, count-MSE loss, +-2-channel shifts, gradients clipped at norm 1, 80 epochs (89.67% in fixed point, mean of 3
seeds: 90.4 / 89.9 / 88.7%; the recurrent LIF 512 net before, ``--arch recurrent --hidden 512``: 86.0%;
``--dropout`` drops the Loihi net's hidden spikes while training). ``--loihi --levels K`` codes each bin's count as K binary
lines (a thermometer code). ``--verify N --verify-run RUN_DIR`` runs only the Lava check, on a saved ``--loihi`` run (dataset,
data root and input pipeline from its manifest), and writes ``RUN_DIR/loihi.h5`` and ``RUN_DIR/loihi_verify.json``:

    python examples/train_shd.py --data-root ~/data --dataset spoken_digits --out runs/sd
    python examples/train_shd.py --data-root ~/data --dataset spoken_digits --loihi --out runs/sd_loihi
    python examples/train_shd.py --verify 100 --verify-run runs/sd_loihi
"""

from __future__ import annotations

import argparse
import sys
import time

from neurosynth.errors import UserError

PROGRAM = "examples/train_shd.py"
ARCHS = ("recurrent", "ff", "alif", "adlif", "delays")
#: the float models' loss for each ``--readout``
READOUT_LOSS = {"max": "max_membrane_ce", "mean": "mean_membrane_ce", "count": "rate_ce"}
#: The documented defaults of each ``--dataset`` (``--loihi`` runs: the ``"<dataset>/loihi"`` entry on top). Every
#: option left unset takes its value from here; the run's manifest records the resolved values. SHD keeps the
#: classic setting (100 bins of 14 ms from t = 0, 700 channels). The spoken-digits recipe was chosen on the
#: validation voices (``experiments/recipe_spoken_digits.py``, ``docs/recipe_spoken_digits.md``).
RECIPES: dict[str, dict] = {
    "shd": {"align": "none", "window_ms": 1400.0, "T": 100, "channels": 700, "arch": "recurrent", "hidden": 128,
            "layers": 1, "epochs": 30, "lr": 2e-3, "batch_size": 64, "readout": "max", "dropout": 0.0, "bn": False,
            "shift": 0, "chan_shift": 0, "max_delay": 25, "alpha": 0.0, "init_gain": 3.0,
            "loihi_loss": "rate_ce", "levels": 1, "loihi_readout": "spikes", "loihi_bias": False,
            "log_input": False, "time_stretch": 0.0},
    "spoken_digits": {"align": "onset", "window_ms": 700.0, "dt_ms": 20.0, "channels": 140, "arch": "adlif",
                      "hidden": 1024, "layers": 2, "epochs": 60, "lr": 2e-3, "batch_size": 64, "readout": "mean",
                      "dropout": 0.3, "bn": True, "shift": 2, "chan_shift": 2, "max_delay": 25, "alpha": 0.0,
                      "init_gain": 3.0, "loihi_loss": "rate_ce", "levels": 1, "loihi_readout": "spikes",
                      "loihi_bias": False, "log_input": True, "time_stretch": 0.25},
    # the Loihi-exact model (2 x feed-forward LIF 256 whose synapses learn delays of 0..11 steps, each layer with a
    # neuron bias, 8-bit QAT; netx ``delay``, Lava DelayDense) on the same onset-aligned window, binary 10 ms bins of
    # all 700 cochlea channels, +-2-channel shifts, gradients clipped at norm 1 (chosen on validation over 2 x
    # recurrent LIF 512 and 256, with and without dropout and speed changes; 140 groups, binary or as 4 thermometer
    # levels; 1 layer, no clipping, no bias, no channel shifts, a voltage readout)
    "spoken_digits/loihi": {"arch": "delays", "hidden": 256, "max_delay": 12, "layers": 2, "channels": 700,
                            "dt_ms": 10.0,
                            "loihi_loss": "count_mse", "loihi_readout": "spikes", "loihi_bias": True,
                            "grad_clip": 1.0, "shift": 2, "chan_shift": 2,
                            "epochs": 80, "lr": 2e-3, "batch_size": 64, "alpha": 0.0, "init_gain": 3.0, "bn": False,
                            "dropout": 0.0, "levels": 1, "log_input": False, "time_stretch": 0.0},
}


def build_model(hidden: int, n_in: int = 700, n_out: int = 20, beta: float = 0.95, beta_out: float = 0.95,
                arch: str = "recurrent", reset: str = "subtract", readout: str = "li", dropout: float = 0.0,
                bn: bool = False, layers: int = 1, max_delay: int = 25, generator=None):
    """``arch``: ``recurrent`` (recurrent LIF, the default), ``ff`` (feed-forward LIF hidden layer), ``alif``
    (recurrent adaptive-threshold LIF, Bellec et al. 2018; adaptation decay 0.98, scale 0.5), ``adlif`` (recurrent
    adLIF, Bittar & Garner's RadLIF: per-neuron learnable time constants and adaptation, drawn uniformly in the
    published ranges from ``generator``) or ``delays`` (feed-forward LIF whose synapses have learnable delays of
    0..``max_delay``-1 steps, Hammouamri et al. 2023). ``layers`` hidden layers of ``hidden`` neurons, each optionally
    followed by BatchNorm (``bn``, on the synaptic current) and dropout. ``reset``: the hidden neurons' reset,
    ``subtract`` or ``zero`` (NIR's reset: ``neurosynth export nir`` takes only that one). ``readout``: ``li``
    (membrane readout) or ``lif`` (spiking output neurons, zero reset: every node of the model then has an snnTorch
    1.0 importer)."""
    import torch.nn as nn

    from neurosynth.layers import SNN, Recurrent
    from neurosynth.neurons import ALIF, LI, LIF, build_neuron

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    mods: list = []
    n = n_in
    for _ in range(layers):
        if arch == "delays":
            from neurosynth.delays import DelayedLinear

            mods.append(DelayedLinear(n, hidden, max_delay=max_delay, generator=generator))
        else:
            mods.append(nn.Linear(n, hidden))
        if bn:
            mods.append(nn.BatchNorm1d(hidden))
        if arch in ("ff", "delays"):
            mods.append(LIF(beta=beta, threshold=1.0, reset=reset))
        elif arch == "alif":
            mods.append(Recurrent(hidden, ALIF(beta=beta, threshold=1.0, adapt_decay=0.98, adapt_scale=0.5,
                                               reset=reset)))
        elif arch == "adlif":
            neuron = build_neuron("adlif", shape=hidden, reset=reset)
            if generator is not None:
                neuron.init_uniform_(generator)
            mods.append(Recurrent(hidden, neuron))
        else:
            mods.append(Recurrent(hidden, LIF(beta=beta, threshold=1.0, reset=reset)))
        if dropout:
            mods.append(nn.Dropout(dropout))
        n = hidden
    out = LI(beta=beta_out) if readout == "li" else LIF(beta=beta_out, threshold=1.0, reset="zero")
    return SNN(*mods, nn.Linear(n, n_out), out)


#: the ``--arch`` values a ``--loihi`` model can take: recurrent LIF (netx ``dense_rec``), feed-forward LIF, and
#: feed-forward LIF with learned per-synapse delays (netx ``delay``, Lava ``DelayDense``; recurrent layers cannot
#: carry delays in netx). adLIF / ALIF have no Lava process (``../shared/research/delays_adlif.md``).
LOIHI_TITLE = {"recurrent": "recurrent LIF", "ff": "feed-forward LIF", "delays": "LIF with learned delays"}
LOIHI_ARCHS = tuple(LOIHI_TITLE)


def check_loihi_arch(arch: str) -> None:
    """A UserError unless ``--arch`` has a Loihi 2 counterpart (:data:`LOIHI_ARCHS`)."""
    if arch not in LOIHI_ARCHS:
        raise UserError(f"--arch {arch} has no Loihi 2 counterpart (no Lava process or netx neuron has adLIF's or "
                        f"ALIF's adaptation): with --loihi use --arch {', '.join(LOIHI_ARCHS)}")


def build_loihi_model(hidden: int, n_in: int = 700, n_out: int = 20, beta: float = 0.95, alpha: float = 0.0,
                      threshold: float = 1.0, layers: int = 1, readout: str = "spikes", bias: bool = False,
                      dropout: float = 0.0, arch: str = "recurrent", max_delay: int = 25):
    from neurosynth.arch import build
    from neurosynth.hardware.targets.loihi_qat import loihi_mlp_spec, loihi_rsnn_spec

    if arch == "recurrent":
        return build(loihi_rsnn_spec(n_in, hidden, n_out, beta=beta, alpha=alpha, threshold=threshold, layers=layers,
                                     readout=readout, bias=bias, dropout=dropout))
    check_loihi_arch(arch)
    return build(loihi_mlp_spec(n_in, [hidden] * int(layers), n_out, beta=beta, alpha=alpha, threshold=threshold,
                                max_delay=int(max_delay) if arch == "delays" else None, readout=readout, bias=bias,
                                dropout=dropout))


def build_model_from(args, n_in: int = 700, generator=None):
    if getattr(args, "loihi", False):
        from neurosynth.hardware.targets.loihi_qat import scale_synapses

        return scale_synapses(build_loihi_model(args.hidden, n_in=n_in, beta=args.beta, alpha=args.alpha,
                                                layers=getattr(args, "layers", None) or 1,
                                                readout=getattr(args, "loihi_readout", None) or "spikes",
                                                bias=bool(getattr(args, "loihi_bias", False)),
                                                dropout=getattr(args, "dropout", None) or 0.0,
                                                arch=getattr(args, "arch", None) or "recurrent",
                                                max_delay=getattr(args, "max_delay", None) or 25),
                              args.init_gain)
    return build_model(args.hidden, n_in=n_in, arch=getattr(args, "arch", None) or "recurrent",
                       reset=getattr(args, "reset", "subtract"),
                       readout="lif" if getattr(args, "readout", "max") == "count" else "li",
                       dropout=getattr(args, "dropout", None) or 0.0, bn=bool(getattr(args, "bn", False)),
                       layers=getattr(args, "layers", None) or 1, max_delay=getattr(args, "max_delay", None) or 25,
                       generator=generator)


def parse_args(argv=None):
    from neurosynth.apps.cli import ScriptHelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=ScriptHelpFormatter)
    p.add_argument("--data-root", default=None, help="folder holding SHD/shd_{train,test}.h5 (not needed with --benchmark)")
    p.add_argument("--dataset", choices=["shd", "spoken_digits"], default="shd",
                   help="shd (default): DATA_ROOT/SHD/shd_*.h5; spoken_digits: the generated synthetic speech under "
                        "DATA_ROOT/SpokenDigits (`neurosynth data generate spoken_digits --data-root DATA_ROOT`; read "
                        "as generated, whatever its options, and generated with the defaults if missing)")
    p.add_argument("--download", action="store_true", help="download SHD into --data-root if missing")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the dataset's recipe)")
    p.add_argument("--T", type=int, default=None,
                   help="time steps spanning --window-ms (SHD default 100 = 14 ms bins over 1.4 s); sets the bin width "
                        "unless --dt-ms is given")
    p.add_argument("--dt-ms", type=float, default=None, help="bin width in ms (default: the recipe's, or window / T)")
    p.add_argument("--window-ms", type=float, default=None,
                   help="the span the network sees, in ms: from t = 0 (--align none) or from --pre-ms before the "
                        "word's onset (--align onset)")
    p.add_argument("--align", choices=["none", "onset"], default=None,
                   help="none: bins from t = 0 (SHD's standard); onset: the window starts --pre-ms before the onset "
                        "found on the population spike count (host-side preprocessing, the same for the Lava check)")
    p.add_argument("--onset-frac", type=float, default=0.1,
                   help="--align onset: the onset is the first bin whose 10 ms population count exceeds this "
                        "fraction of the sample's peak")
    p.add_argument("--pre-ms", type=float, default=30.0, help="--align onset: ms kept before the onset")
    p.add_argument("--channels", type=int, default=None,
                   help="input channels: the 700 cochlea channels summed in groups (140 = groups of 5)")
    p.add_argument("--hidden", type=int, default=None, help="neurons per hidden layer")
    p.add_argument("--layers", type=int, default=None,
                   help="hidden layers (--loihi: recurrent LIF layers, each a netx dense_rec)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--readout", choices=["max", "mean", "count"], default=None,
                   help="max / mean: over time of an LI membrane readout; count: spiking output neurons read out by "
                        "spike count (with --reset zero every node of the model then imports into snnTorch 1.0)")
    p.add_argument("--arch", choices=list(ARCHS), default=None,
                   help="hidden layers: recurrent LIF, feed-forward LIF, recurrent adaptive-threshold LIF (alif), "
                        "recurrent adLIF (adlif, Bittar & Garner) or feed-forward LIF with learnable synaptic delays "
                        "(delays, Hammouamri et al.). With --loihi: recurrent, ff or delays (Lava's DelayDense; the "
                        "spoken_digits Loihi recipe's default, recurrent for shd); adLIF and ALIF have no Loihi "
                        "counterpart")
    p.add_argument("--max-delay", type=int, default=None,
                   help="--arch delays: delays 0..K-1 steps (--loihi: K <= 63, Loihi 2's 6-bit delays as netx loads them)")
    p.add_argument("--dropout", type=float, default=None, help="dropout after each hidden layer")
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=None,
                   help="BatchNorm on each hidden layer's synaptic current")
    p.add_argument("--shift", type=int, default=None,
                   help="augmentation: shift each training sample by a random -N..N steps in time")
    p.add_argument("--chan-shift", type=int, default=None,
                   help="augmentation: shift each training sample by a random -N..N channels (voices differ in "
                        "pitch and formants along the cochlea's tonotopic axis)")
    p.add_argument("--time-stretch", type=float, default=None, metavar="S",
                   help="augmentation: play each training sample at a random speed in [1/(1+S), 1+S] (log-uniform; "
                        "speakers differ in speaking rate); 0: off")
    p.add_argument("--log-input", action=argparse.BooleanOptionalAction, default=None,
                   help="float models: feed log(1 + count) of each bin instead of the count (host-side, recorded in "
                        "the manifest's input); the --loihi model's input is binary")
    p.add_argument("--reset", choices=["subtract", "zero"], default="subtract",
                   help="hidden neurons' reset; zero is NIR's, so `neurosynth export nir` can hand the model to "
                        "snnTorch and other NIR tools (--loihi models always reset to zero)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="run directory to write (default runs/shd; --resume RUN_DIR names it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--loihi", action="store_true",
                   help="train the Loihi-exact recurrent model (binary spikes, 8-bit QAT, zero reset, one-step "
                        "synaptic delays, spike-count readout); see the module docstring")
    p.add_argument("--alpha", type=float, default=None, help="--loihi: current decay (0: LIF, > 0: CubaLIF)")
    p.add_argument("--loihi-loss", choices=["rate_ce", "count_mse"], default=None,
                   help="--loihi: the loss on the output spike counts: rate_ce (cross-entropy, counts as logits) or "
                        "count_mse (MSE to 0.8 T spikes for the label, 0.1 T for the others; steadier when T is long)")
    p.add_argument("--loihi-readout", choices=["spikes", "voltage"], default=None,
                   help="--loihi: spikes (output LIF neurons read out by spike count, --loihi-loss) or voltage (a "
                        "non-leaky integrator output layer scored by its membrane after the last step, loss "
                        "final_membrane_ce; on Loihi, neurons that never fire and whose v is read at the end)")
    p.add_argument("--loihi-bias", action=argparse.BooleanOptionalAction, default=None,
                   help="--loihi: a learnable bias per hidden neuron (Loihi's neuron bias, netx 'bias', 1/64 grid); "
                        "needs --alpha 0 (default: the recipe's)")
    p.add_argument("--levels", type=int, default=None, metavar="K",
                   help="--loihi: each bin's spike count as K binary input lines, line k firing when the count is "
                        "at least k (a thermometer code; 1 clips the count to one spike). Host-side, like the "
                        "binning: Loihi still receives binary spikes, K x --channels input lines")
    p.add_argument("--beta", type=float, default=0.95, help="--loihi: membrane decay")
    p.add_argument("--init-gain", type=float, default=None,
                   help="--loihi: multiply the initial weights by this (8-bit rounding zeroes small initial weights; "
                        "SHD default 3.0)")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="--loihi: export loihi.h5 and verify it in Lava (float and fixed point) on N test samples")
    p.add_argument("--copies", type=int, default=None, metavar="R",
                   help="--verify: network copies side by side per Lava run (default: auto_copies)")
    p.add_argument("--verify-run", default=None, metavar="RUN_DIR",
                   help="with --verify N, no training: verify the model of an earlier --loihi run directory (its "
                        "--dataset, --data-root and --T are read from its manifest); writes RUN_DIR/loihi.h5 and "
                        "RUN_DIR/loihi_verify.json. Lets a long Lava check run after (and apart from) the training")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="no data needed: time N training batches on generated inputs of the real shapes and "
                        "extrapolate to one epoch of the real training set (8156 samples)")
    from neurosynth.apps.recipes.examples import add_options

    add_options(p, shipped="spoken_digits: its valid split, voices unheard in training, whereas a carved "
                          "fraction shares the training voices; shd ships none")
    args = p.parse_args(argv)
    if args.verify_run and not args.verify:
        p.error("--verify-run RUN_DIR needs --verify N")
    if not args.data_root and not args.benchmark and not args.verify_run:
        p.error("--data-root DIR is required (only --benchmark N and --verify-run RUN_DIR run without it)")
    fill_recipe(args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from neurosynth.utils import check_device

    check_device(args.device)  # before any data is read: one error line, as the CLI prints
    import torch
    from torch.utils.data import Subset

    from neurosynth.utils import seed_all

    torch.set_num_threads(args.threads)
    g = seed_all(args.seed)
    if args.verify_run:
        return verify_run(args.verify_run, args.verify, argv, copies=args.copies)
    inp = apply_recipe(args)
    if args.benchmark:
        from neurosynth.apps.recipes.examples import benchmark

        loss = loihi_loss(args) if args.loihi else READOUT_LOSS[args.readout]
        return benchmark(args, build_model_from(args, args.channels, g), (inp.steps, args.batch_size, args.channels), 20,
                         8156, g, loss)
    if args.verify and not args.loihi:
        raise UserError("--verify needs --loihi")
    from neurosynth.apps.recipes import audio
    from neurosynth.apps.recipes import examples as ex

    ex.check_options(args, argv, PROGRAM, default_out="runs/shd")
    train = audio.load_audio(args.dataset, args.data_root, "train", inp, download=args.download)
    test = audio.load_audio(args.dataset, args.data_root, "test", inp, download=args.download)
    shipped = None
    if args.dataset == "spoken_digits" and args.val_fraction is None:  # its own validation voices
        shipped = audio.load_audio(args.dataset, args.data_root, "valid", inp)
    n_in = int(train[0][0].shape[-1])  # --channels (spoken_digits generated with fewer channels: still 700-wide)
    if args.limit:
        train, test = (Subset(d, range(min(args.limit, len(d)))) for d in (train, test))
        if shipped is not None:
            shipped = Subset(shipped, range(min(args.limit, len(shipped))))
    fit, val, split = ex.split(args, train, shipped, "the dataset's valid split: voice variants held out by family "
                                                    "(datasets/spoken_digits.py)")
    if args.shift or args.chan_shift or args.time_stretch:  # drawn from the loader's generator: part of the
        # checkpoint, so --resume is exact
        fit = audio.Augment(fit, args.shift, args.chan_shift, g, stretch=args.time_stretch)
    model = build_model_from(args, n_in, g)
    loss = READOUT_LOSS[args.readout]
    if args.loihi:  # spiking outputs: spike counts (cross-entropy on counts, or count MSE); voltage: the last membrane
        loss = loihi_loss(args)

    def verify(run, model, results):
        if args.loihi:  # the integer network Lava runs bit for bit, on every test sample (numpy, no Lava needed)
            results["loihi_fixed"] = fixed_point_accuracy(model, test, (n_in,))
        if args.loihi and args.verify:
            from neurosynth.hardware.lava.verify import verify_samples

            t1 = time.perf_counter()
            results["loihi"] = verify_samples(model, test, args.verify, run.path / "loihi.h5", (n_in,),
                                              copies=args.copies)
            results["loihi"]["verify_seconds"] = time.perf_counter() - t1

    title = ("SHD" if args.dataset == "shd" else "spoken_digits") + \
        (f" {LOIHI_TITLE[args.arch]} (Loihi-exact)" if args.loihi else f" {args.arch}")
    return ex.train_example(args, argv, program=PROGRAM, model=model, fit=fit, val=val, test=test, split=split,
                            loss=loss, generator=g, config=ex.config_of(args, loss=loss, input=inp.to_dict()),
                            title=title, after=verify)


def loihi_loss(args) -> str:
    """The loss of a ``--loihi`` model: ``--loihi-loss`` on spike counts, or ``final_membrane_ce`` for the voltage
    readout."""
    if (getattr(args, "loihi_readout", None) or "spikes") == "voltage":
        return "final_membrane_ce"
    return getattr(args, "loihi_loss", None) or "rate_ce"


def fill_recipe(args) -> None:
    """Fill every option left unset from :data:`RECIPES` (in place, so the manifest records the values used);
    ``parse_args`` calls it. Idempotent."""
    recipe = dict(RECIPES[args.dataset])
    if args.loihi:
        recipe.update(RECIPES.get(f"{args.dataset}/loihi", {}))
    levels = args.levels if args.levels is not None else recipe.get("levels", 1)
    if getattr(args, "chan_shift", None) is None and int(levels) > 1:
        args.chan_shift = 0  # thermometer lines are level-major: the recipe's channel shifts would mix them
    for k, v in recipe.items():
        if k not in ("T", "dt_ms") and getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.dt_ms is None:
        args.dt_ms = args.window_ms / args.T if args.T else recipe.get("dt_ms") or args.window_ms / recipe["T"]
    if args.T is None:
        args.T = max(1, int(round(args.window_ms / args.dt_ms)))


def apply_recipe(args):
    """:func:`fill_recipe`, then the :class:`~neurosynth.apps.recipes.audio.AudioInput` the options describe (a bad
    value is a UserError); ``args.T`` becomes its number of steps."""
    from neurosynth.apps.recipes.audio import AudioInput

    fill_recipe(args)
    if not args.loihi and args.loihi_readout == "voltage":
        raise UserError("--loihi-readout voltage is the Loihi model's output layer; it needs --loihi (the float models "
                        "choose theirs with --readout)")
    if args.loihi and args.loihi_bias and float(args.alpha) != 0.0:
        raise UserError(f"--loihi-bias needs --alpha 0: Loihi adds its neuron bias to the membrane, which equals the "
                        f"trained bias on the input only for a plain LIF (got --alpha {args.alpha}); use --no-loihi-bias")
    if not (float(args.time_stretch) >= 0 and float(args.time_stretch) < 10):
        raise UserError(f"--time-stretch S plays samples at speeds in [1/(1+S), 1+S]: S must be in [0, 10); got "
                        f"{args.time_stretch}")
    if not 0.0 <= float(args.dropout) < 1.0:
        raise UserError(f"--dropout is the probability of dropping a hidden neuron's output while training: it must "
                        f"be in [0, 1); got {args.dropout}")
    if args.loihi:
        check_loihi_arch(args.arch)
    if args.arch == "delays":
        from neurosynth.hardware.targets.loihi_qat import MAX_DELAY_TAPS

        most, why = (MAX_DELAY_TAPS, " (Loihi 2 stores 6-bit delays; netx clips to 62)") if args.loihi else (10_000, "")
        if not 1 <= int(args.max_delay) <= most:
            raise UserError(f"--max-delay K gives learned delays of 0..K-1 steps: K must be in 1..{most}{why}; "
                            f"got {args.max_delay}")
    if args.loihi and args.log_input:
        raise UserError("--log-input compresses spike counts for the float models; the --loihi model's input is "
                        "binary spikes: use --no-log-input")
    if not args.loihi and int(args.levels) != 1:
        raise UserError(f"--levels {args.levels} codes the Loihi model's binary input; it needs --loihi (the float "
                        f"models read the counts themselves)")
    try:
        inp = AudioInput(dt_ms=float(args.dt_ms), window_ms=float(args.window_ms), channels=int(args.channels),
                         align=args.align, onset_frac=float(args.onset_frac), pre_ms=float(args.pre_ms),
                         binary=bool(args.loihi), levels=int(args.levels) if args.loihi else 1,
                         log1p=bool(args.log_input))
    except ValueError as e:
        raise UserError(str(e)) from None
    if inp.levels > 1 and args.chan_shift:
        raise UserError(f"--chan-shift {args.chan_shift} moves channels of the counts, but --levels {inp.levels} codes "
                        f"them as level-major binary lines, which a channel shift would mix; use --chan-shift 0")
    args.T = inp.steps
    return inp


def verify_run(run_dir, n: int, argv=None, copies: int | None = None) -> int:
    """``--verify N --verify-run RUN_DIR``: the Lava check of :func:`main` on a saved ``--loihi`` run."""
    import json
    from pathlib import Path

    from neurosynth.hardware.lava.verify import verify_samples
    from neurosynth.io import write_json
    from neurosynth.rundir import load_run

    run = Path(run_dir)
    model, _, _ = load_run(run)
    cfg = json.loads((run / "manifest.json").read_text(encoding="utf-8")).get("config", {})
    if not cfg.get("loihi"):
        raise UserError(f"{run} was not trained with --loihi; only --loihi runs can be verified in Lava")
    test = test_inputs(cfg)
    t0 = time.perf_counter()
    shape = (int(test[0][0].shape[-1]),)
    res = verify_samples(model, test, n, run / "loihi.h5", shape, copies=copies)
    res["verify_seconds"] = time.perf_counter() - t0
    # the integer reference on the same samples: equals Lava's fixed-point accuracy when the check is bit-exact
    # (what makes the reference's accuracy on the whole test split, metrics.json "loihi_fixed", Lava's)
    from torch.utils.data import Subset

    res["reference_fixed_same_samples"] = fixed_point_accuracy(model, Subset(test, range(min(n, len(test)))), shape)
    command = [sys.executable, *sys.argv] if argv is None else ["examples/train_shd.py", *argv]
    write_json(run / "loihi_verify.json", {"command": " ".join(map(str, command)), "dataset": cfg.get("dataset", "shd"),
                                           "data_root": cfg["data_root"], "n_test": len(test), **res})
    return 0 if res.get("netx_file") else 1


def fixed_point_accuracy(model, samples, input_shape, batch: int = 100) -> dict:
    """Accuracy of the fixed-point network a ``--loihi`` model exports to (``neurosynth.hardware.lava.reference``'s
    integer simulation, which ``--verify`` checks bit-exact against Lava) on every sample, read out as the Lava check
    does (spike counts over the ``T`` steps after the network's lag, or a voltage readout's ``v`` after the last
    step)."""
    import numpy as np
    import torch

    from neurosynth.hardware.lava.ir import check_fixed, extract
    from neurosynth.hardware.lava.reference import simulate, torch_predictions

    model.eval()
    net = extract(model, input_shape)
    check_fixed(net)
    lag = net.torch_shifts()[-1]
    correct = agree = 0
    t0 = time.process_time()
    for s in range(0, len(samples), batch):
        pairs = [samples[i] for i in range(s, min(s + batch, len(samples)))]
        x = (torch.stack([torch.as_tensor(p[0]) for p in pairs], 1) > 0).float()  # [T, B, N] binary, as verify
        y = np.array([int(p[1]) for p in pairs])
        T = x.shape[0]
        xp = np.concatenate([x.numpy(), np.zeros((lag, *x.shape[1:]), np.float32)]).astype(np.uint8)
        pred = simulate(net, xp, "fixed").predictions(lag, T)  # spike counts, or a voltage readout's final v
        with torch.no_grad():
            out = model(x)
            tp = torch_predictions(out, net.voltage_readout)
        correct += int((pred == y).sum())
        agree += int((pred == tp).sum())
    n = len(samples)
    return {"accuracy": correct / n, "samples": n, "prediction_agreement_with_torch": agree / n,
            "cpu_seconds": round(time.process_time() - t0, 1),
            "how": "neurosynth.hardware.lava.reference.simulate(net, x, 'fixed') on the exported integer network "
                   "(the network --verify runs in Lava and checks bit-exact)"}


def test_inputs(cfg: dict):
    """The test split as a ``--loihi`` run's manifest config says it was prepared (binary spikes)."""
    from neurosynth.apps.recipes.audio import load_run_split

    return load_run_split(cfg, "test", binary=True)


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
