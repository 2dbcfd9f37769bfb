"""``spoken_digits``: synthetic spoken digits (espeak-ng) through the cochlea of :mod:`.cochlea`, in the SHD layout.

20 classes like SHD: "zero" ... "nine" in English (labels 0-9) and "null" ... "neun" in German (10-19), spoken by
espeak-ng's voice variants (``espeak-ng --voices=variant``, ~100 of them) at random speaking rates and pitches,
with optional background noise and a random onset. The train/valid/test split is by voice variant: no valid or
test speaker is heard in training, and each voice family (whispered, breathy, Klatt source, female, male,
unspecified;
:func:`variant_family`) is spread over the splits in proportion, so no kind of voice is only ever tested.

This is **synthetic speech** (formant synthesis), not the SHD recordings. It is here so every machine has a
real audio -> spikes pipeline to train on; SHD numbers are not comparable with it.

Files (the exact SHD layout, so anything that reads SHD reads these)::

    <root>/SpokenDigits/SHD/shd_train.h5      spikes/times (vlen float16 s), spikes/units (vlen uint16),
    <root>/SpokenDigits/SHD/shd_valid.h5      labels (uint16), extra/keys, extra/speaker, extra/meta_info/...
    <root>/SpokenDigits/SHD/shd_test.h5
    <root>/SpokenDigits/spoken_digits.json    manifest: options, espeak-ng version, voices per split, sha256s

so ``python examples/train_shd.py --data-root <root>/SpokenDigits`` trains on it unchanged, and
``neurosynth.datasets.load("spoken_digits", root, split)`` reads it through the SHD path (binning, cache).

Generation is deterministic: the same options (seed included) and espeak-ng version write byte-identical
files. Each file is written to a temp name and renamed, and the manifest (with every file's SHA-256) is
written last, so a missing manifest or a hash mismatch means a partial or corrupt cache: it is rebuilt,
never used. A lock file serialises concurrent generators.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np

from .cochlea import COCHLEAS, cochlea_config, get_cochlea, resample, sha256_file, write_shd_h5
from .errors import DatasetNotFoundError

FOLDER = "SpokenDigits"
MANIFEST = "spoken_digits.json"
FORMAT = 2
SPLITS = ("train", "valid", "test")
ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
# the class names SHD uses in extra/keys ("german fuenf": ASCII)
KEYS = tuple(f"english {w}" for w in ENGLISH) + tuple(f"german {w.replace('ü', 'ue')}" for w in GERMAN)
INSTALL_HINT = "install it with: sudo apt-get install -y espeak-ng (Debian/Ubuntu) or brew install espeak-ng (macOS)"


@dataclasses.dataclass(frozen=True)
class SpokenDigitsOptions:
    """What gets generated. The defaults: every distinct espeak-ng voice variant (97 with espeak-ng 1.51), 26% of
    them held out for test and 10% for validation (stratified by voice family), two utterances per (word,
    variant): with 97 variants 2,480 train / 400 valid / 1,000 test samples (measured sizes and times in
    docs/datasets.md). ``voices=N`` uses a seeded, family-stratified choice of N variants."""

    seed: int = 0
    voices: int | None = None  # use this many variants (a seeded choice); None: all
    test_fraction: float = 0.26  # fraction of the variants held out for the test split
    valid_fraction: float = 0.1  # fraction of the variants held out for the validation split
    per_voice: int = 2  # utterances per (word, variant)
    rate: tuple[int, int] = (120, 210)  # espeak-ng -s range (words per minute)
    pitch: tuple[int, int] = (20, 80)  # espeak-ng -p range (0-99)
    noise: float = 0.5  # probability that an utterance gets background noise
    snr_db: tuple[float, float] = (5.0, 30.0)  # SNR range of that noise
    max_onset_s: float = 0.2  # random silence before the word
    channels: int = 700  # cochlea channels (SHD: 700)
    cochlea: str = "fast"  # "fast" (default) or "lauscher" (SHD's own model; slow; pip install 'neurosynth[lauscher]')
    audio_rate: int = 48000  # espeak-ng's 22,050 Hz output is resampled to SHD's 48 kHz before noise is added

    def __post_init__(self):
        need = 3 if self.valid_fraction > 0 else 2
        if self.voices is not None and self.voices < need:
            raise ValueError(f"voices must be >= {need} (at least one train, {'one valid, ' if need == 3 else ''}"
                             f"one test variant); got {self.voices}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1); got {self.test_fraction}")
        if not 0 <= self.valid_fraction < 1 or self.test_fraction + self.valid_fraction >= 1:
            raise ValueError(f"valid_fraction must be in [0, 1) and leave training voices (test_fraction + "
                             f"valid_fraction < 1); got {self.valid_fraction} and {self.test_fraction}")
        if self.per_voice < 1:
            raise ValueError(f"per_voice must be >= 1; got {self.per_voice}")
        if not 0 <= self.noise <= 1:
            raise ValueError(f"noise is a probability in [0, 1]; got {self.noise}")
        for name in ("rate", "pitch", "snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} range must be (low, high); got {(lo, hi)}")
        COCHLEAS.get(self.cochlea)  # unknown name: ValueError listing the known ones
        if self.max_onset_s < 0:
            raise ValueError(f"max_onset_s must be >= 0; got {self.max_onset_s}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_kwargs(cls, **kw) -> SpokenDigitsOptions:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(kw) - fields
        if unknown:
            raise ValueError(f"spoken_digits got unknown options {sorted(unknown)}; generation options are "
                             f"{sorted(fields)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
        return cls(**kw)

    def cochlea_config(self):
        return cochlea_config(self.cochlea, n_channels=self.channels)


# ------------------------------------------------------------------ espeak-ng

def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def require_espeak() -> str:
    exe = espeak_binary()
    if exe is None:
        raise DatasetNotFoundError(f"spoken_digits is generated with the espeak-ng speech synthesiser, which is not "
                                   f"installed; {INSTALL_HINT}")
    return exe


def espeak_version() -> str:
    out = subprocess.run([require_espeak(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


@functools.cache
def _variants_cached(exe: str) -> tuple[str, ...]:
    return tuple(_espeak_variants(exe))


def espeak_variants() -> list[str]:
    """The usable espeak-ng voice variants (computed once per process; see :func:`_espeak_variants`)."""
    return list(_variants_cached(require_espeak()))


def _espeak_variants(exe: str) -> list[str]:
    """The voice variants espeak-ng knows (``espeak-ng --voices=variant``), as names usable after ``+``, minus
    those that sound exactly like the base voice or like an earlier variant (a name espeak-ng does not resolve
    falls back to the base voice silently; a few variant files are copies)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and "/" in parts[4]:
            names.append(parts[4].split("/", 1)[1])
    names = sorted(set(names))

    def digest(voice):
        res = subprocess.run([exe, "-v", voice, "--stdout", "zero"], capture_output=True, check=False)
        return hashlib.sha256(res.stdout).hexdigest()

    with ThreadPoolExecutor(max_workers=4) as pool:
        digests = list(pool.map(digest, ["en", *(f"en+{n}" for n in names)]))
    seen = {digests[0]}
    keep = []
    for n, h in zip(names, digests[1:]):
        if h not in seen:
            seen.add(h)
            keep.append(n)
    return keep


def synthesize(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """espeak-ng's waveform (float64 in [-1, 1]) and sample rate for ``text``."""
    from scipy.io import wavfile

    res = subprocess.run([require_espeak(), "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)), "--stdout",
                          text], capture_output=True, check=False)
    if res.returncode != 0 or len(res.stdout) < 64:
        raise RuntimeError(f"espeak-ng -v {voice} failed (exit {res.returncode}): {res.stderr.decode(errors='replace')}")
    with warnings.catch_warnings():  # --stdout writes a streaming header whose length field is 2^31
        warnings.simplefilter("ignore")
        fs, data = wavfile.read(io.BytesIO(res.stdout))
    return np.asarray(data, np.float64) / 32768.0, int(fs)


# ------------------------------------------------------------------ the utterance plan

@dataclasses.dataclass(frozen=True)
class Utterance:
    label: int
    text: str
    voice: str  # full espeak voice, e.g. "en-us+Alex"
    speaker: int  # index of the variant in the manifest's variant list
    rate: int
    pitch: int
    snr_db: float  # nan: no noise
    noise_kind: str  # "white" | "pink" | ""
    onset_s: float
    seed: int  # cochlea noise and background noise


def espeak_data_dir() -> Path | None:
    """espeak-ng's data folder (``espeak-ng --version`` prints it), or None."""
    out = subprocess.run([require_espeak(), "--version"], capture_output=True, text=True, check=True).stdout
    if "Data at:" not in out:
        return None
    return Path(out.split("Data at:", 1)[1].strip())


FAMILIES = ("whispered", "breathy", "klatt", "female", "male", "unspecified")


def variant_family(text: str) -> str:
    """The family of a voice variant from its espeak-ng variant file's text: ``whispered`` (voicing below 25:
    ``whisper``, ``whisperf``, ``caleb``), ``breathy`` (voicing 25-44), ``klatt`` (the Klatt voice source), else
    its declared gender, else ``unspecified``."""
    fields = {}
    for line in text.splitlines():
        parts = line.split("//", 1)[0].split()
        if parts:
            fields.setdefault(parts[0], parts[1:])
    voicing = fields.get("voicing")
    if voicing and voicing[0].lstrip("-").isdigit() and int(voicing[0]) < 45:
        return "whispered" if int(voicing[0]) < 25 else "breathy"
    if "klatt" in fields:
        return "klatt"
    gender = fields.get("gender")
    if gender and gender[0] in ("female", "male"):
        return gender[0]
    return "unspecified"


def variant_families(variants: list[str]) -> dict[str, str]:
    """``{variant: family}`` read from espeak-ng's variant files (``<data>/voices/!v/<name>``)."""
    data = espeak_data_dir()
    out = {}
    for v in variants:
        f = data / "voices" / "!v" / v if data is not None else None
        try:
            out[v] = variant_family(f.read_text(encoding="utf-8", errors="replace")) if f else "unspecified"
        except OSError:
            out[v] = "unspecified"
    return out


def split_voices(variants: list[str], opts: SpokenDigitsOptions, families: dict[str, str] | None = None
                 ) -> dict[str, list[str]]:
    """Split the variants into train / valid / test, stratified by family.

    Each family's members are shuffled (seeded) and given the keys ``(rank + u) / size`` (``u`` uniform in
    [0, 1)); sorted by key, the variants of every family are spread evenly along the list, whose first part is
    the training split, then validation, then test. So every family has its first member in training and its
    others spread over the splits in proportion (a family of two, like the whispered voices, puts one voice in
    training and one in validation or test). ``voices=N`` keeps the first N of that order (still stratified)."""
    families = families or {v: "unspecified" for v in variants}
    rng = np.random.default_rng([opts.seed, 1])
    by_family: dict[str, list[str]] = {}
    for v in sorted(variants):
        by_family.setdefault(families.get(v, "unspecified"), []).append(v)
    keyed = []
    for fam in sorted(by_family):
        members = [by_family[fam][i] for i in rng.permutation(len(by_family[fam]))]
        u = rng.random(len(members))
        keyed += [((rank + u[rank]) / len(members), v) for rank, v in enumerate(members)]
    order = [v for _, v in sorted(keyed)]
    if opts.voices is not None:
        if opts.voices > len(order):
            raise ValueError(f"voices={opts.voices}, but espeak-ng has {len(order)} distinct variants")
        # a stratified subset: every k-th of the family-interleaved order, so the subset keeps the families
        pick = np.round(np.linspace(0, len(order) - 1, opts.voices)).astype(int)
        order = [order[i] for i in pick]
    n = len(order)
    n_test = max(1, int(round(opts.test_fraction * n)))
    n_valid = int(round(opts.valid_fraction * n))
    if opts.valid_fraction > 0:
        n_valid = max(1, n_valid)
    n_train = n - n_test - n_valid
    if n_train < 1:
        raise ValueError(f"{n} voice variants cannot be split into train, valid ({n_valid}) and test ({n_test})")
    # the training split takes keys from the start of each family's range; test the end
    return {"train": sorted(order[:n_train]), "valid": sorted(order[n_train:n_train + n_valid]),
            "test": sorted(order[n_train + n_valid:])}


def plan(split: str, voices: list[str], all_variants: list[str], opts: SpokenDigitsOptions) -> list[Utterance]:
    """Every utterance of ``split``, in file order, with its random draws fixed by the seed."""
    rng = np.random.default_rng([opts.seed, 2, SPLITS.index(split)])
    out = []
    for v in voices:
        for _rep in range(opts.per_voice):
            for label in range(20):
                if label < 10:
                    lang, text = ("en-us" if rng.random() < 0.5 else "en"), ENGLISH[label]
                else:
                    lang, text = "de", GERMAN[label - 10]
                noisy = rng.random() < opts.noise
                out.append(Utterance(
                    label=label, text=text, voice=f"{lang}+{v}", speaker=all_variants.index(v),
                    rate=int(rng.integers(opts.rate[0], opts.rate[1] + 1)),
                    pitch=int(rng.integers(opts.pitch[0], opts.pitch[1] + 1)),
                    snr_db=float(rng.uniform(*opts.snr_db)) if noisy else float("nan"),
                    noise_kind=("white" if rng.random() < 0.5 else "pink") if noisy else "",
                    onset_s=float(rng.uniform(0, opts.max_onset_s)),
                    seed=int(rng.integers(2**31 - 1))))
    order = rng.permutation(len(out))  # shuffle so a file prefix (--limit) holds every class
    return [out[i] for i in order]


def render(u: Utterance, audio_rate: int = 48000) -> tuple[np.ndarray, int]:
    """The waveform of an utterance at ``audio_rate``: espeak-ng output (22,050 Hz) resampled, onset silence,
    background noise at the SNR (drawn at ``audio_rate``, so white noise reaches the highest channels)."""
    wave, fs = synthesize(u.text, u.voice, u.rate, u.pitch)
    if audio_rate:
        wave, fs = resample(wave, fs, audio_rate), int(audio_rate)
    wave = np.concatenate([np.zeros(int(round(u.onset_s * fs))), wave])
    if u.noise_kind:
        rng = np.random.default_rng([u.seed, 7])
        n = rng.standard_normal(wave.size)
        if u.noise_kind == "pink":  # 1/f power: shape white noise in the frequency domain
            spec = np.fft.rfft(n)
            f = np.arange(spec.size, dtype=np.float64)
            f[0] = 1.0
            n = np.fft.irfft(spec / np.sqrt(f), wave.size)
        p_sig = float(np.mean(wave[wave != 0] ** 2)) if np.any(wave != 0) else 1e-8
        n *= np.sqrt(p_sig / 10 ** (u.snr_db / 10) / max(float(np.mean(n ** 2)), 1e-20))
        wave = wave + n
    return wave, fs


def encode_utterances(utts: list[Utterance], config, *, batch: int = 32, progress: bool = True,
                      desc: str = "spoken_digits", threads: int = 4, audio_rate: int = 48000):
    """Render and encode ``utts``: a list of ``(times_s, units)``. espeak-ng runs in a few threads; the fast
    cochlea runs its LIF stage over batches of utterances (same spikes as one at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    coch = get_cochlea(config)
    out = []
    bar = tqdm(total=len(utts), desc=desc, unit="utt", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(utts), batch):
            chunk = utts[start:start + batch]
            waves = list(pool.map(lambda u: render(u, audio_rate), chunk))
            out.extend(coch.encode_batch(waves, [u.seed for u in chunk]))
            bar.update(len(chunk))
    bar.close()
    return out


# ------------------------------------------------------------------ the cache on disk

def folder(root) -> Path:
    return Path(os.path.expanduser(str(root))) / FOLDER


def file_path(root, split: str) -> Path:
    return folder(root) / "SHD" / f"shd_{split}.h5"


def _read_manifest(root) -> dict | None:
    p = folder(root) / MANIFEST
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def sample_families(root, split: str) -> list[str | None]:
    """The voice family of every sample of a generated ``split``, in file order (``extra/speaker`` indexes the
    file's ``extra/meta_info/voice`` list; the families are the manifest's); ``None`` where the manifest names no
    family for the voice."""
    import h5py

    fams = ((_read_manifest(root) or {}).get("families") or {}).get(split, {})
    with h5py.File(file_path(root, split), "r") as f:
        voices = [v.decode() if isinstance(v, bytes) else str(v) for v in f["extra/meta_info/voice"][()]]
        speakers = np.asarray(f["extra/speaker"][()], dtype=np.int64)
    return [fams.get(voices[s]) if 0 <= s < len(voices) else None for s in speakers]


def accuracy_by_family(pred, y, families: list[str | None]) -> dict[str, dict]:
    """``{family: {"acc", "n"}}`` of predictions ``pred`` against labels ``y`` (same order as ``families``, e.g.
    :func:`sample_families`), families in sorted order; samples without a family are left out."""
    pred, y = np.asarray(pred), np.asarray(y)
    if not len(pred) == len(y) == len(families):
        raise ValueError(f"pred, y and families must have one entry per sample; got {len(pred)}, {len(y)}, "
                         f"{len(families)}")
    fam = np.asarray([f if f is not None else "" for f in families])
    return {f: {"acc": round(float((pred[fam == f] == y[fam == f]).mean()), 4), "n": int((fam == f).sum())}
            for f in sorted(set(fam.tolist()) - {""})}


def check(root, opts: SpokenDigitsOptions | None = None) -> tuple[bool, str]:
    """Whether ``root`` holds a complete spoken_digits cache (for ``opts`` when given): ``(ok, reason)``."""
    man = _read_manifest(root)
    if man is None:
        return False, f"no manifest {folder(root) / MANIFEST}"
    if man.get("format") != FORMAT:
        return False, f"manifest format {man.get('format')} (this version writes {FORMAT})"
    if opts is not None and man.get("options") != opts.to_dict():
        return False, f"generated with other options ({man.get('options')})"
    if opts is not None and man.get("cochlea") != opts.cochlea_config().to_dict():
        return False, ("encoded by a cochlea with other parameters (an earlier version of neurosynth's "
                       f"'{opts.cochlea}' cochlea)")
    for split, info in man.get("files", {}).items():
        p = file_path(root, split)
        if not p.is_file():
            return False, f"{p} is missing"
        if p.stat().st_size != info.get("bytes"):
            return False, (f"{p} is {p.stat().st_size} bytes but the manifest says {info.get('bytes')}: truncated or "
                           "changed")
        if sha256_file(p) != info.get("sha256"):
            return False, f"{p} does not match its SHA-256 in the manifest (partial or corrupt)"
    if set(man.get("files", {})) != set(SPLITS):
        return False, f"the manifest does not list the splits {list(SPLITS)}"
    return True, "ok"


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive (waiting) ``flock`` on ``path``, removed when released: concurrent generators take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # the previous holder may have removed the file between our open and flock: take the new one
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def generate(root, opts: SpokenDigitsOptions | None = None, *, progress: bool = True, force: bool = False,
             implicit: bool = False) -> dict:
    """Make sure ``root/SpokenDigits`` holds spoken_digits for ``opts``; generate it if not. Returns the manifest.

    The new dataset is built in ``root/.SpokenDigits.partial`` and swapped in whole when complete, so a kill
    never leaves a half-written dataset and never loses the previous one. A dataset generated with other
    options is replaced only with ``force`` (``neurosynth data generate ... --force``); ``implicit`` (a reader
    that found no usable dataset) never replaces an existing one: it says what is wrong and how to rebuild."""
    opts = opts or SpokenDigitsOptions()
    d = folder(root)
    made = [a for a in [d.parent, *d.parent.parents] if not a.exists()]  # removed again if nothing is generated
    try:
        with _lock(d.parent / f".{d.name}.lock"):
            return _generate(root, d, opts, progress=progress, force=force, implicit=implicit)
    except BaseException:
        for a in made:
            with contextlib.suppress(OSError):
                a.rmdir()
        raise


def _generate(root, d: Path, opts: SpokenDigitsOptions, *, progress: bool, force: bool, implicit: bool) -> dict:
    """:func:`generate` under the lock."""
    from neurosynth.errors import UserError
    from neurosynth.rundir import swap_in

    ok, reason = check(root, opts)
    if ok and not force:
        return _read_manifest(root)
    exists = d.is_dir() and any(p.name != ".lock" for p in d.iterdir())
    rebuild = (f"neurosynth data generate spoken_digits --data-root {root} --seed {opts.seed} --voices "
               f"{opts.voices or 0} --per-voice {opts.per_voice} --test-fraction {opts.test_fraction} "
               f"--valid-fraction {opts.valid_fraction} --noise {opts.noise} --channels {opts.channels} "
               f"--cochlea {opts.cochlea} --force")
    if exists and implicit:
        raise DatasetNotFoundError(f"{d} holds a spoken_digits dataset that cannot be used: {reason}. neurosynth "
                                   f"does not rebuild a dataset on its own; rebuild it with: {rebuild} (or choose "
                                   "another --data-root)")
    man = _read_manifest(root)
    if exists and not force and man is not None and man.get("options") != opts.to_dict():
        raise UserError(f"{d} holds spoken_digits generated with other options ({man.get('options')}); pass "
                        "--force to replace it, or choose another --data-root")
    require_espeak()
    if exists:
        import sys

        print(f"spoken_digits: rebuilding {d} ({reason})", file=sys.stderr)
    partial = d.parent / f".{d.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # a killed earlier generation (we hold the lock)
    try:
        man = _build(partial, opts, progress)
        swap_in(partial, d)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return man


def _build(d: Path, opts: SpokenDigitsOptions, progress: bool) -> dict:
    """Synthesise, encode and write the whole dataset (every split and the manifest) into ``d``."""
    variants = espeak_variants()
    if len(variants) < 2:
        raise DatasetNotFoundError(f"espeak-ng lists {len(variants)} voice variants; need at least 2")
    families = variant_families(variants)
    voices = split_voices(variants, opts, families)
    config = opts.cochlea_config()
    files = {}
    for split in SPLITS:
        utts = plan(split, voices[split], variants, opts)
        spikes = encode_utterances(utts, config, progress=progress, desc=f"spoken_digits {split}",
                                   audio_rate=opts.audio_rate)
        meta = {"voice": variants, "language": [u.voice.split("+")[0] for u in utts]}
        path = d / "SHD" / f"shd_{split}.h5"
        digest = write_shd_h5(path, spikes, [u.label for u in utts], KEYS, [u.speaker for u in utts], meta=meta)
        files[split] = {"path": str(path.relative_to(d)), "sha256": digest, "bytes": path.stat().st_size,
                        "samples": len(utts), "spikes_total": int(sum(len(t) for t, _ in spikes))}
    man = {"format": FORMAT, "dataset": "spoken_digits", "options": opts.to_dict(),
           "espeak_ng": espeak_version(), "cochlea": config.to_dict(), "voices": voices,
           "families": {split: {v: families[v] for v in vs} for split, vs in voices.items()}, "files": files,
           "note": "synthetic speech (espeak-ng), not the SHD recordings"}
    from neurosynth.io import write_json

    write_json(d / MANIFEST, man)
    return man


def load_spoken_digits(root, split: str = "train", *, download: bool = False, generate_missing: bool = True,
                       progress: bool = True, **kw):
    """``neurosynth.datasets.load("spoken_digits", root, split, ...)``: generate (once) and read through SHD's path.

    Generation options (:class:`SpokenDigitsOptions` fields: ``seed``, ``voices``, ``per_voice``, ``noise``,
    ...) select what is generated; the other keywords are :class:`Binning` fields and ``cache`` as for SHD.
    """
    from .events import load_events

    del download  # nothing to download: the data is synthesised locally
    gen_fields = {f.name for f in dataclasses.fields(SpokenDigitsOptions)}
    gen_kw = {k: kw.pop(k) for k in list(kw) if k in gen_fields}
    if split not in SPLITS:
        raise ValueError(f"dataset 'spoken_digits' has splits {list(SPLITS)}, not '{split}'")
    opts = SpokenDigitsOptions.from_kwargs(**gen_kw) if gen_kw else None
    ok, reason = check(root, opts)
    if not ok:
        if not generate_missing:
            raise DatasetNotFoundError(f"dataset 'spoken_digits' not found or incomplete under {folder(root)} "
                                       f"({reason}); generate it with: neurosynth data generate spoken_digits --root {root} "
                                       f"(or neurosynth.datasets.load('spoken_digits', '{root}'))")
        generate(root, opts, progress=progress, implicit=True)
    man = _read_manifest(root) or {}
    from neurosynth.rundir import record_dataset

    record_dataset("spoken_digits", split, path=str(file_path(root, split)),
                   sha256=man.get("files", {}).get(split, {}).get("sha256"), options=man.get("options"),
                   cochlea=man.get("cochlea"), espeak_ng=man.get("espeak_ng"))
    return load_events("spoken_digits", folder(root), split, **kw)


def sample_waveform(root, split: str, index: int) -> tuple[np.ndarray, int, Utterance]:
    """Re-synthesise sample ``index`` of ``split`` from the manifest (deterministic): ``(wave, fs, utterance)``.
    Used by ``neurosynth data plot`` (the HDF5 files hold spikes only)."""
    man = _read_manifest(root)
    if man is None:
        raise DatasetNotFoundError(f"no spoken_digits manifest under {folder(root)}")
    opts = SpokenDigitsOptions.from_kwargs(**man["options"])
    import h5py

    # speaker ids index the full variant list, stored in the files' extra/meta_info/voice

    with h5py.File(file_path(root, split), "r") as f:
        variants = [v.decode() for v in f["extra/meta_info/voice"]]
    utts = plan(split, man["voices"][split], variants, opts)
    if not 0 <= index < len(utts):
        raise IndexError(f"spoken_digits {split} has {len(utts)} samples; index {index} is out of range")
    u = utts[index]
    wave, fs = render(u, opts.audio_rate)
    return wave, fs, u


def info_lines(root) -> list[str]:
    """Extra lines of ``neurosynth data info spoken_digits``: how it was generated."""
    man = _read_manifest(root)
    if not man:
        return []
    lines = [f"  generated by {man['espeak_ng']} with {man['options']}",
             f"  voices: train {len(man['voices']['train'])}, valid {len(man['voices'].get('valid', []))}, "
             f"test {len(man['voices']['test'])} (disjoint, stratified by family); "
             "synthetic speech, not the SHD recordings"]
    for split, fams in man.get("families", {}).items():
        counts: dict[str, int] = {}
        for fam in fams.values():
            counts[fam] = counts.get(fam, 0) + 1
        lines.append(f"    {split} voice families: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}")
    return lines


def figure(root, split: str, index: int, title: str):
    """``neurosynth data plot spoken_digits``: waveform (re-synthesised from the manifest), cochleagram and spike
    raster of one sample."""
    from .cochlea import Cochlea, CochleaConfig, plot_audio_sample, read_shd_h5

    man = _read_manifest(root)
    data = read_shd_h5(file_path(root, split))
    wave, fs, utt = sample_waveform(root, split, index)
    # the cochleagram is the fast cochlea's hair-cell drive (Lauscher's is not kept); rows: unit 0 = base
    config = CochleaConfig(n_channels=man["cochlea"]["n_channels"])
    coch = Cochlea(config)
    return plot_audio_sample(data["times"][index], data["units"][index], wave=wave, fs=fs,
                             cochleagram=coch.cochleagram(wave, fs), dt=config.dt, n_channels=config.n_channels,
                             title=f"{title}: '{utt.text}', voice {utt.voice}, rate {utt.rate}, pitch {utt.pitch}")
