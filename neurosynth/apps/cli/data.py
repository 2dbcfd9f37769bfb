"""``neurosynth data info|plot``: look at a dataset on disk.

``neurosynth data info NAME --root DIR`` prints which splits are present (and where they are expected),
sample counts, sensor size, classes and the event statistics of a few samples.
``neurosynth data plot NAME --root DIR --index I --out x.png`` draws one sample: a spike raster for SHD/SSC,
binned frames for the cameras, the image (or its spike encoding) for static datasets.
"""

from __future__ import annotations

import argparse


def register(subparsers):
    p = subparsers.add_parser("data", help="inspect datasets: info, plot",
                              description="Inspect a dataset on disk (nothing is downloaded).")
    inner = p.add_subparsers(dest="data_command", metavar="ACTION")
    info = inner.add_parser("info", help="what is present, sample counts, sensor size, classes, event rates")
    info.add_argument("name", help="dataset name (shd, ssc, dvs_gesture, nmnist, cifar10_dvs, cifar10, cifar100, "
                                   "digits, spoken_digits)")
    info.add_argument("--root", default=None, help="folder holding the data (not needed for digits)")
    info.add_argument("--samples", type=int, default=5, help="samples to compute event statistics on (default 5)")
    info.set_defaults(_run=run)
    plot = inner.add_parser("plot", help="draw one sample to a PNG")
    plot.add_argument("name")
    plot.add_argument("--root", default=None)
    plot.add_argument("--split", default="train")
    plot.add_argument("--index", type=int, default=0)
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--T", type=int, default=None, help="time steps for the frame plot (default: dataset's)")
    plot.set_defaults(_run=run)
    from .data_audio import register_audio

    register_audio(inner)  # encode-audio, generate spoken_digits
    global _PARSER
    _PARSER = p
    return p


_PARSER: argparse.ArgumentParser | None = None


def _usage() -> int:
    import sys

    if _PARSER is not None:
        _PARSER.print_help(sys.stderr)
    return 2


def run(args) -> int:
    from neurosynth.errors import UserError

    if getattr(args, "data_command", None) not in ("info", "plot"):
        return _usage()
    try:
        import neurosynth.datasets as nd

        entry = nd.DATASETS.get(args.name)
    except ValueError as e:
        raise UserError(str(e)) from e
    if entry.name != "digits" and not args.root:
        raise UserError(f"dataset '{args.name}' needs --root DIR (the folder holding the data)")
    if args.data_command == "info":
        return _info(nd, entry, args)
    return _plot(nd, entry, args)


def _no_generation(entry) -> dict:
    """info/plot never generate a synthetic dataset (``neurosynth data generate`` does)."""
    return {"generate_missing": False} if entry.name == "spoken_digits" else {}


def _splits(entry) -> tuple[str, ...]:
    if entry.kind == "events":
        from neurosynth.datasets.events import EVENT_SPECS

        return EVENT_SPECS[entry.name].splits
    return ("train", "test")


def _info(nd, entry, args) -> int:
    import numpy as np

    from neurosynth.datasets.errors import DatasetNotFoundError

    print(f"{entry.name}: {entry.description}")
    found = 0
    for split in _splits(entry):
        try:
            ds = nd.load(entry.name, args.root, split, cache=False, **_no_generation(entry))
        except DatasetNotFoundError as e:
            print(f"  {split}: MISSING - {e}")
            continue
        found += 1
        print(f"  {split}: {len(ds)} samples")
        if entry.kind == "events":
            print(f"    location: {ds.location.path}")
            print(f"    sensor size (W, H, P): {ds.spec.sensor_size}; default binning: {ds.binning}")
            n = min(args.samples, len(ds))
            counts, durations = [], []
            for i in range(n):
                ev, _ = ds.events(i)
                counts.append(len(ev))
                durations.append((float(ev["t"][-1]) - float(ev["t"][0])) / 1e6 if len(ev) else 0.0)
            if n:
                c, d = np.asarray(counts), np.asarray(durations)
                rate = c / np.maximum(d, 1e-9)
                print(f"    first {n} samples: events/sample mean {c.mean():.0f} (min {c.min()}, max {c.max()}); "
                      f"duration mean {d.mean():.3f} s; event rate mean {rate.mean():.0f} ev/s")
        else:
            x, _ = ds[0]
            print(f"    sample shape: {tuple(x.shape)} ({'T steps, ' if ds.T else ''}values in [0, 1])")
        labels = ds.labels()
        hist = np.bincount(labels, minlength=ds.n_classes)
        print(f"    classes: {ds.n_classes} ({', '.join(map(str, ds.classes[:5]))}{', ...' if ds.n_classes > 5 else ''});"
              f" samples per class min {hist.min()}, max {hist.max()}")
    if found and entry.name == "spoken_digits":
        from .data_audio import spoken_digits_info

        spoken_digits_info(args.root)
    if not found:
        from neurosynth.errors import UserError

        raise UserError(f"no split of '{entry.name}' found under {args.root} (see the paths above)")
    return 0


def _plot(nd, entry, args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from neurosynth.errors import UserError
    from neurosynth.io import atomic_path

    kw = {"cache": False, **_no_generation(entry)} if entry.kind == "events" else {}
    if args.T is not None:
        kw["T"] = args.T
    ds = nd.load(entry.name, args.root, args.split, **kw)
    if not 0 <= args.index < len(ds):
        raise UserError(f"--index {args.index} is out of range: {entry.name} {args.split} has {len(ds)} samples")
    x, label = ds[args.index]
    name = ds.classes[label] if label < len(ds.classes) else str(label)
    title = f"{entry.name} {args.split}[{args.index}] label {label} ({name})"
    if entry.name == "spoken_digits":  # waveform, cochleagram and spike raster
        from .data_audio import spoken_digits_figure

        fig = spoken_digits_figure(args.root, args.split, args.index, title)
    elif entry.kind == "events" and not ds.spec.has_y:
        ev, _ = ds.events(args.index)
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.scatter(ev["t"] / 1e3, ev["x"], s=1, c="k")
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("channel")
        ax.set_title(f"{title}: {len(ev)} spikes")
    elif x.dim() >= 4 or (entry.kind == "events"):
        frames = x.numpy()
        frames = frames.sum(1) if frames.ndim == 4 else frames  # sum polarities / channels -> [T, H, W]
        n = min(8, frames.shape[0])
        idx = np.linspace(0, frames.shape[0] - 1, n).round().astype(int)
        fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.4), squeeze=False)
        for a, t in zip(axes[0], idx):
            a.imshow(frames[t], cmap="magma")
            a.set_title(f"t={t}", fontsize=8)
            a.axis("off")
        fig.suptitle(title, fontsize=9)
    else:
        img = x.numpy()
        fig, ax = plt.subplots(figsize=(4, 4))
        if img.ndim == 2:  # [T, features] spike raster of an encoded static image
            ax.imshow(img.T, aspect="auto", cmap="gray_r", interpolation="nearest")
            ax.set_xlabel("time step")
            ax.set_ylabel("input")
        elif img.ndim == 3:
            ax.imshow(np.transpose(img, (1, 2, 0)))
        else:
            side = int(round(np.sqrt(img.size)))
            ax.imshow(img.reshape(side, -1), cmap="gray")
        ax.set_title(title, fontsize=9)
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0
