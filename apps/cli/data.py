"""``neurosynth data list|info|plot``: the registered datasets, and a dataset on disk.

``neurosynth data list`` prints the registered datasets with their facts (modality, shape of a sample, classes,
whether a root folder is needed): every command asks these entries, never a dataset's name.
``neurosynth data info NAME --data-root DIR`` prints which splits are present (and where they are expected),
sample counts, sensor size, classes and the event statistics of a few samples.
``neurosynth data plot NAME --data-root DIR --index I --out x.png`` draws one sample: a spike raster for SHD/SSC,
binned frames and an event raster for the cameras, the image (or its frame strip with --T) for static datasets.
``neurosynth data simulate-events INPUT --out events.npy`` converts a frame sequence (a folder of images or a
``.npy`` array ``[F, H, W]``) into DVS events with the simulated event camera.
"""

from __future__ import annotations

import argparse


def register(subparsers):
    p = subparsers.add_parser("data", help="inspect datasets: list, info, plot",
                              description="Inspect a dataset on disk (nothing is downloaded).")
    inner = p.add_subparsers(dest="data_command", metavar="ACTION")
    lst = inner.add_parser("list", help="the registered datasets and their facts (shape, classes, root)")
    lst.set_defaults(_run=run)
    info = inner.add_parser("info", help="what is present, sample counts, sensor size, classes, event rates")
    info.add_argument("name", help="dataset name (`neurosynth data list` lists them)")
    _data_root(info)
    info.add_argument("--samples", type=int, default=5, help="samples to compute event statistics on")
    info.set_defaults(_run=run)
    plot = inner.add_parser("plot", help="draw one sample to a PNG")
    plot.add_argument("name")
    _data_root(plot)
    plot.add_argument("--split", default="train")
    plot.add_argument("--index", type=int, default=0)
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    plot.add_argument("--T", type=int, default=None, help="time steps for the frame plot (default: dataset's)")
    plot.set_defaults(_run=run)
    sim = inner.add_parser(
        "simulate-events", help="convert frames (a folder of images or a .npy [F, H, W]) into DVS events",
        description="Run the simulated event camera (neurosynth.datasets.event_camera: log intensity, per-pixel "
                    "contrast thresholds with mismatch, interpolated timestamps, refractory period, leak and shot "
                    "noise) over a frame sequence and write the events as a tonic-style structured .npy "
                    "(fields x, y, t [us], p [1 = ON]).")
    sim.add_argument("input", help="folder of images (sorted by name; PNG/JPG/...) or a .npy array [F, H, W] "
                                   "(uint8 0..255 or float in [0, 1])")
    sim.add_argument("--out", required=True, help="events file to write (.npy)")
    sim.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    sim.add_argument("--fps", type=float, default=None, help="frame rate (or --times)")
    sim.add_argument("--times", default=None, help=".npy of frame times in microseconds, one per frame")
    sim.add_argument("--threshold", type=float, default=0.2, help="ON/OFF contrast threshold (log units)")
    sim.add_argument("--threshold-sigma", type=float, default=0.03, help="per-pixel threshold mismatch (std)")
    sim.add_argument("--refractory-us", type=float, default=500.0)
    sim.add_argument("--leak-rate", type=float, default=0.01,
                     help="leak (background) events per pixel per second (default 0.01, v2e's)")
    sim.add_argument("--shot-noise-rate", type=float, default=0.001,
                     help="shot-noise events per second of a dark pixel (default 0.001, v2e's; 0.25x when bright)")
    sim.add_argument("--seed", type=int, default=0, help="noise seed of this recording")
    sim.add_argument("--sensor-seed", type=int, default=0, help="seed of the per-pixel mismatch pattern")
    sim.set_defaults(_run=run)

    from .data_audio import register_audio

    register_audio(inner)  # encode-audio, generate spoken_digits
    # `neurosynth --help` lists every action (the table above is the one list)
    summary = "inspect and prepare datasets: " + ", ".join(inner.choices)
    for action in subparsers._choices_actions:
        if action.dest == "data":
            action.help = summary
    p.description = summary + ". Nothing is downloaded."
    global _PARSER
    _PARSER = p
    return p


_PARSER: argparse.ArgumentParser | None = None


def _data_root(p: argparse.ArgumentParser) -> None:
    """``--data-root`` (the name every command uses); ``--root`` stays as a hidden alias."""
    p.add_argument("--data-root", dest="root", default=None, help="folder holding the data (not needed for digits)")
    p.add_argument("--root", dest="root", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _usage() -> int:
    import sys

    if _PARSER is not None:
        _PARSER.print_help(sys.stderr)
    return 2


def run(args) -> int:
    from neurosynth.errors import UserError

    if getattr(args, "data_command", None) not in ("list", "info", "plot", "simulate-events"):
        return _usage()
    if args.data_command == "simulate-events":
        return _simulate(args)
    import neurosynth.datasets as nd

    if args.data_command == "list":
        return _list(nd)
    try:
        entry = nd.DATASETS.get(args.name)
    except ValueError as e:
        raise UserError(str(e)) from e
    if entry.needs_root and not args.root:
        raise UserError(f"dataset '{args.name}' needs --data-root DIR (the folder holding the data)")
    if args.data_command == "info":
        return _info(nd, entry, args)
    return _plot(nd, entry, args)


def _list(nd) -> int:
    rows = [("name", "modality", "sample (per step)", "classes", "splits", "root")]
    for name, e in nd.DATASETS.items():
        root = "needed" if e.needs_root else ("default folder" if e.default_root is not None else "not needed")
        rows.append((name, e.modality, "x".join(map(str, e.input_shape)) or "?", str(e.n_classes or "?"),
                     ",".join(e.splits), root))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _info(nd, entry, args) -> int:
    import numpy as np

    from neurosynth.datasets.errors import DatasetNotFoundError

    print(f"{entry.name}: {entry.description}")
    if entry.info is not None:  # generated on first use: describe what is on disk (loading would generate it)
        for line in entry.info(entry.resolve_root(args.root)):
            print(line)
        return 0
    found = 0
    for split in entry.splits:
        try:  # info never generates a synthetic dataset (`neurosynth data generate` does): entry.offline
            ds = nd.load(entry.name, args.root, split, **({"cache": False} if entry.kind == "events" else {}),
                         **entry.offline)
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
    if found and entry.notes is not None:
        for line in entry.notes(entry.resolve_root(args.root)):
            print(line)
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
    from neurosynth.rundir import check_output, output_file

    if args.split not in entry.splits:
        raise UserError(f"--split {args.split!r} is not a split of {entry.name}; choose from {', '.join(entry.splits)}")
    check_output(args.out, force=args.force)  # before loading anything
    kw = {"cache": False, **entry.offline} if entry.kind == "events" else dict(entry.offline)
    if entry.existing is not None:  # the options of the data already generated (plotting never generates)
        kw.update(entry.existing(entry.resolve_root(args.root), args.split))
    if args.T is not None:
        kw["T"] = args.T
    ds = nd.load(entry.name, args.root, args.split, **kw)
    if not 0 <= args.index < len(ds):
        raise UserError(f"--index {args.index} is out of range: {entry.name} {args.split} has {len(ds)} samples")
    x, label = ds[args.index]
    name = ds.classes[label] if label < len(ds.classes) else str(label)
    title = f"{entry.name} {args.split}[{args.index}] label {label} ({name})"
    if entry.figure is not None:  # the dataset's own figure (spoken_digits: waveform, cochleagram, raster)
        fig = entry.figure(entry.resolve_root(args.root), args.split, args.index, title)
    elif entry.kind == "events" and not ds.spec.has_y:
        ev, _ = ds.events(args.index)
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.scatter(ev["t"] / 1e3, ev["x"], s=1, c="k")
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("channel")
        ax.set_title(f"{title}: {len(ev)} spikes")
    elif x.dim() >= 4 or (entry.kind == "events"):
        frames = x.numpy()
        signed = entry.kind == "events" and frames.ndim == 4 and frames.shape[1] == 2
        # cameras: ON - OFF per pixel (red/blue); images: sum of channels
        frames = (frames[:, 1] - frames[:, 0]) if signed else (frames.sum(1) if frames.ndim == 4 else frames)
        n = min(8, frames.shape[0])
        idx = np.linspace(0, frames.shape[0] - 1, n).round().astype(int)
        rows = 2 if entry.kind == "events" else 1
        fig = plt.figure(figsize=(2 * n, 2.4 * rows + (0.6 if rows > 1 else 0)))
        grid = fig.add_gridspec(rows, n)
        lim = float(np.abs(frames).max()) or 1.0
        for j, t in enumerate(idx):
            a = fig.add_subplot(grid[0, j])
            if signed:
                a.imshow(frames[t], cmap="bwr", vmin=-lim, vmax=lim)
            else:
                a.imshow(frames[t], cmap="magma" if entry.kind == "events" else "gray")
            a.set_title(f"t={t}", fontsize=8)
            a.axis("off")
        if entry.kind == "events":  # event raster: time vs pixel (y * W + x), ON red, OFF blue
            ev, _ = ds.events(args.index)
            a = fig.add_subplot(grid[1, :])
            width = int(ds.spec.sensor_size[0])
            pix = ev["y"].astype(np.int64) * width + ev["x"]
            on = ev["p"] > 0
            a.scatter(ev["t"][on] / 1e3, pix[on], s=0.3, c="r", label="ON", rasterized=True)
            a.scatter(ev["t"][~on] / 1e3, pix[~on], s=0.3, c="b", label="OFF", rasterized=True)
            a.set_xlabel("time (ms)")
            a.set_ylabel("pixel (y*W + x)")
            a.set_title(f"{len(ev)} events", fontsize=8)
            a.legend(loc="upper right", fontsize=7, markerscale=10)
        fig.suptitle(title, fontsize=9)
    else:
        img = x.numpy()
        fig, ax = plt.subplots(figsize=(4, 4))
        if img.ndim == 2:  # [T, features] spike raster of an encoded static image
            ax.imshow(img.T, aspect="auto", cmap="gray_r", interpolation="nearest")
            ax.set_xlabel("time step")
            ax.set_ylabel("input")
        elif img.ndim == 3 and img.shape[0] == 1:  # grey image [1, H, W]
            ax.imshow(img[0], cmap="gray")
        elif img.ndim == 3:
            ax.imshow(np.transpose(img, (1, 2, 0)))
        else:
            side = int(round(np.sqrt(img.size)))
            ax.imshow(img.reshape(side, -1), cmap="gray")
        ax.set_title(title, fontsize=9)
    with output_file(args.out, force=args.force) as out, atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


def _simulate(args) -> int:
    from pathlib import Path

    import numpy as np

    from neurosynth.datasets.event_camera import EventCameraConfig, simulate_events
    from neurosynth.errors import UserError
    from neurosynth.io import atomic_write
    from neurosynth.rundir import check_output, output_file

    if not str(args.out).endswith(".npy"):
        raise UserError(f"--out must be a .npy file; got {args.out}")
    check_output(args.out, force=args.force)  # before the work
    src = Path(args.input)
    if src.is_dir():
        from PIL import Image, UnidentifiedImageError

        files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(f"{src} holds no image files")
        frames = []
        for f in files:
            try:
                with Image.open(f) as im:
                    frames.append(np.asarray(im.convert("L"), dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as e:
                raise UserError(f"{f} is not a readable image ({e}); the folder must hold only the frames") from e
        shapes = {fr.shape for fr in frames}
        if len(shapes) > 1:
            raise UserError(f"the images in {src} differ in size ({sorted(shapes)}); all frames must be the same size")
        frames = np.stack(frames)
    elif src.is_file() and src.suffix == ".npy":
        try:
            frames = np.load(src, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"{src} is not a readable .npy array ({e})") from e
    else:
        raise UserError(f"{src} is neither a folder of images nor a .npy file")
    times = None
    if args.times:
        try:
            times = np.load(args.times, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"--times {args.times} is not a readable .npy array ({e})") from e
    if times is None and args.fps is None:
        raise UserError("give the frame rate (--fps) or the frame times (--times FILE.npy, microseconds)")
    try:
        cfg = EventCameraConfig(threshold_on=args.threshold, threshold_off=args.threshold,
                                threshold_sigma=args.threshold_sigma, refractory_us=args.refractory_us,
                                leak_rate_hz=args.leak_rate, shot_noise_rate_hz=args.shot_noise_rate,
                                sensor_seed=args.sensor_seed)
        events = simulate_events(frames, times, cfg, seed=args.seed, fps=None if times is not None else args.fps)
    except ValueError as e:
        raise UserError(f"simulate-events: {e}") from e
    with output_file(args.out, force=args.force) as out, atomic_write(out, "wb") as f:
        np.save(f, events, allow_pickle=False)
    n_on = int((events["p"] > 0).sum())
    dur = (events["t"][-1] - events["t"][0]) / 1e6 if len(events) else 0.0
    print(f"{len(events)} events ({n_on} ON, {len(events) - n_on} OFF) over {dur:.3f} s from {len(frames)} frames of "
          f"{frames.shape[2]}x{frames.shape[1]}; sensor size (W, H, P) = ({frames.shape[2]}, {frames.shape[1]}, 2); "
          f"wrote {args.out}")
    return 0
