"""The run directory every command writes and reads.

``arch.json`` (ArchSpec), ``model.pt`` (a state_dict, loaded with ``weights_only=True``), ``metrics.json``,
``manifest.json`` (command, config, seed, package versions, hardware, git commit, timestamp, results) and
``plots/*.png``. Every file is written atomically.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import atomic_path, read_json, write_json

PACKAGES = ("neurosynth", "torch", "numpy", "scikit-learn", "tonic", "nir", "lava-nc", "cma", "pymoo", "snntorch",
            "spikingjelly", "torchattacks", "ray")


def package_versions(names=PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def git_commit(cwd: str | Path | None = None) -> str | None:
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(command: str | list[str] | None, config: dict, seed: int | None, results: dict | None = None) -> dict:
    if command is None:
        command = sys.argv
    if isinstance(command, (list, tuple)):
        command = " ".join(map(str, command))
    return {
        "command": command,
        "config": config,
        "seed": seed,
        "versions": package_versions(),
        "hardware": hardware_info(),
        "git_commit": git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results or {},
    }


class RunDir:
    """A run directory (created if missing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} exists and is not a directory; choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def save_model(self, model, spec: dict | None = None) -> None:
        import torch

        from .arch import to_spec

        spec = spec if spec is not None else getattr(model, "arch_spec", None) or to_spec(model)
        self.write_json("arch.json", spec)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        with atomic_path(self.path / "model.pt") as tmp:
            torch.save(state, tmp)

    def write_manifest(self, command, config: dict, seed: int | None, results: dict | None = None) -> Path:
        return self.write_json("manifest.json", manifest(command, config, seed, results))

    def plot_path(self, name: str) -> Path:
        (self.path / "plots").mkdir(exist_ok=True)
        return self.path / "plots" / (name if name.endswith(".png") else name + ".png")


def load_run(path: str | os.PathLike, map_location: str = "cpu"):
    """Load ``(model, spec, metrics)`` from a run directory. Never executes code from the files."""
    import torch

    from .arch import build

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist; pass the --out directory of `neurosynth train`")
    for name in ("arch.json", "model.pt"):
        if not (path / name).exists():
            raise UserError(f"{path} is not a complete run directory: {name} is missing")
    spec = read_json(path / "arch.json")
    try:
        model = build(spec)
    except ValueError as e:
        raise UserError(f"{path / 'arch.json'} is not a valid ArchSpec: {e}") from e
    try:
        state = torch.load(path / "model.pt", map_location=map_location, weights_only=True)
    except Exception as e:  # truncated / corrupt / not a state dict
        raise UserError(f"cannot load {path / 'model.pt'}: {e}. The file is corrupt or was not written by neurosynth") from e
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path / 'model.pt'} does not match {path / 'arch.json'}: {e}") from e
    model.eval()
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
    return model, spec, metrics


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
