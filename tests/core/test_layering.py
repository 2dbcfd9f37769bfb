"""The layering contract: `.importlinter` (checked by `make test` through tools/lint_imports.py) must list every
module of the core, and the core must name no package above it."""

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UPPER = {"apps", "datasets", "hardware"}  # neurosynth.datasets / .hardware are mapped in from top-level folders


def _contract_sources() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    return set(cfg["importlinter:contract:core"]["source_modules"].split())


def test_core_contract_lists_every_core_module():
    pkg = ROOT / "neurosynth"
    found = {f"neurosynth.{p.stem}" for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__")}
    found |= {f"neurosynth.{p.name}" for p in pkg.iterdir() if (p / "__init__.py").exists() and p.name not in UPPER}
    assert _contract_sources() == found, "update [importlinter:contract:core] in .importlinter"


def test_core_source_names_no_upper_package():
    """Not even in strings (e.g. the old ArchSpec plugin prefix list named "snn_nas.")."""
    offenders = []
    for f in (ROOT / "neurosynth").rglob("*.py"):
        rel = f.relative_to(ROOT / "neurosynth")
        if rel.parts[0] == "apps" or rel.name == "__main__.py":
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#")[0].strip()
            if code.startswith(("import snn_nas", "from snn_nas")) or "'snn_nas" in code or '"snn_nas' in code:
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert not offenders


def test_plugin_packages_are_registrable():
    from neurosynth.arch import build, plugin_packages, register_plugin_package

    with pytest.raises(ValueError, match="not a module of this project"):
        build({"format": "neurosynth.arch/1", "kind": "x", "plugin": "json.decoder", "layers": []})
    import snn_nas  # noqa: F401  registers itself

    assert {"neurosynth", "snn_nas"} <= set(plugin_packages())
    with pytest.raises(ValueError, match="top-level package name"):
        register_plugin_package("a.b")


@pytest.mark.skipif(not (Path(sys.executable).parent / "lint-imports").exists(), reason="import-linter not installed")
def test_lint_imports_contract_kept():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "lint_imports.py")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout
