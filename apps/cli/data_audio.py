"""Audio actions of ``neurosynth data``: ``encode-audio`` (WAV files -> SHD-layout HDF5 through the cochlea),
and ``generate spoken_digits`` (the spoken_digits lines of ``data info`` and its ``data plot`` figure are hooks of
its dataset entry, in ``neurosynth.datasets.spoken_digits``).

The logic lives in ``neurosynth.datasets.cochlea`` / ``neurosynth.datasets.spoken_digits``; this is the wiring.
"""

from __future__ import annotations


def register_audio(inner) -> None:
    enc = inner.add_parser(
        "encode-audio", help="encode WAV files into spikes (cochlea) in the SHD HDF5 layout",
        description="Encode WAV files with the gammatone/hair-cell/bushy-cell cochlea (700 channels like SHD) and "
                    "write them in the exact SHD HDF5 layout. To train on them with examples/train_shd.py, write "
                    "DIR/SHD/shd_train.h5 and DIR/SHD/shd_test.h5 and pass --data-root DIR.")
    enc.add_argument("wavs", nargs="+", metavar="IN.wav", help="PCM or float WAV files (mono or multi-channel)")
    enc.add_argument("--out", required=True, metavar="FILE.h5", help="HDF5 file to write (atomically)")
    enc.add_argument("--labels", nargs="+", default=None,
                     help="one label per file: integers, or class names (numbered in order of first appearance)")
    enc.add_argument("--channels", type=int, default=700, help="cochlea channels (default 700, like SHD)")
    enc.add_argument("--cochlea", default="fast", choices=["fast", "lauscher"],
                     help="fast (default): our vectorised cochlea that follows Lauscher; lauscher: SHD's own model "
                          "(pip install 'neurosynth[lauscher]'; minutes per second of audio)")
    enc.add_argument("--seed", type=int, default=0, help="cochlea noise seed (file i uses seed + i)")
    enc.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    enc.add_argument("--no-progress", action="store_true")
    enc.set_defaults(_run=run_encode_audio)
    gen = inner.add_parser(
        "generate", help="generate a synthetic dataset (spoken_digits: espeak-ng + cochlea, SHD layout)",
        description="Generate spoken_digits under DATA_ROOT/SpokenDigits (deterministic for a seed; an existing "
                    "complete dataset generated with the same options is kept, one with other options is replaced "
                    "only with --force; the new one is built beside it and swapped in whole). Needs espeak-ng.")
    gen.add_argument("name", choices=["spoken_digits"])
    gen.add_argument("--data-root", "--root", dest="root", required=True,
                     help="folder to generate into (the dataset goes to DATA_ROOT/SpokenDigits)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--voices", type=int, default=0,
                     help="number of espeak-ng voice variants (default 0: all; a family-stratified choice otherwise)")
    gen.add_argument("--per-voice", type=int, default=2, help="utterances per (word, voice) (default 2)")
    gen.add_argument("--test-fraction", type=float, default=0.26,
                     help="fraction of the voices held out for test (default 0.26: 1,000 test utterances)")
    gen.add_argument("--valid-fraction", type=float, default=0.1,
                     help="fraction of the voices held out for validation (default 0.1)")
    gen.add_argument("--noise", type=float, default=0.5, help="probability of background noise (default 0.5)")
    gen.add_argument("--channels", type=int, default=700)
    gen.add_argument("--cochlea", default="fast", choices=["fast", "lauscher"],
                     help="fast (default) or lauscher (SHD's own model: pip install 'neurosynth[lauscher]'; hours for "
                          "the default size)")
    gen.add_argument("--force", action="store_true", help="regenerate even if a matching dataset exists, and replace "
                                                         "one generated with other options")
    gen.add_argument("--no-progress", action="store_true")
    gen.set_defaults(_run=run_generate)


def run_encode_audio(args) -> int:
    from pathlib import Path

    from neurosynth.datasets.cochlea import cochlea_config, encode_wav_files, require_lauscher
    from neurosynth.errors import UserError
    from neurosynth.rundir import output_file

    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'shd_train.h5'}")
    if args.cochlea == "lauscher":
        require_lauscher()
    with output_file(out, force=args.force) as target:
        try:
            config = cochlea_config(args.cochlea, n_channels=args.channels)
            info = encode_wav_files(args.wavs, target, labels=args.labels, seed=args.seed, config=config,
                                    progress=not args.no_progress)
        except ValueError as e:
            raise UserError(str(e)) from e
        except OSError as e:
            raise UserError(f"cannot write {out}: {e.strerror or e}") from e
    n = info["spikes"]
    print(f"wrote {out}: {info['samples']} samples, {len(info['keys'])} classes ({', '.join(info['keys'][:5])}"
          f"{', ...' if len(info['keys']) > 5 else ''}), spikes/sample mean {sum(n) / len(n):.0f} "
          f"(min {min(n)}, max {max(n)}); sha256 {info['sha256'][:16]}")
    return 0


def run_generate(args) -> int:
    from neurosynth.datasets.spoken_digits import SpokenDigitsOptions, folder, generate
    from neurosynth.errors import UserError

    try:
        opts = SpokenDigitsOptions(seed=args.seed, voices=args.voices or None, per_voice=args.per_voice,
                                   test_fraction=args.test_fraction, valid_fraction=args.valid_fraction,
                                   noise=args.noise, channels=args.channels, cochlea=args.cochlea)
        if args.cochlea == "lauscher":
            from neurosynth.datasets.cochlea import require_lauscher

            require_lauscher()
        man = generate(args.root, opts, progress=not args.no_progress, force=args.force)
    except ValueError as e:
        raise UserError(str(e)) from e
    files = man["files"]
    print(f"spoken_digits in {folder(args.root)}: train {files['train']['samples']} samples "
          f"({len(man['voices']['train'])} voices), valid {files['valid']['samples']} samples "
          f"({len(man['voices']['valid'])} unseen voices), test {files['test']['samples']} samples "
          f"({len(man['voices']['test'])} unseen voices); {man['espeak_ng']}")
    # --data-root is the folder *holding* SpokenDigits/, as `data info spoken_digits` and every reader take it
    print(f"train on it: python examples/train_shd.py --dataset spoken_digits --data-root {args.root}")
    return 0
