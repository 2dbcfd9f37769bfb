"""Energy per inference on the generated spoken digits: the Loihi recipe's SNN next to the GRU baseline, on the files
both were measured on (arithmetic cost models of ``neurosynth.hardware.energy``; no training here).

- SNN: the operation counts of ``examples/train_shd.py --loihi`` on the test samples of its Lava check
  (``benchmarks/results/spoken_digits_recipe.json`` -> ``protocol.loihi.lava_check.energy``: synaptic ops at the
  Loihi cost model's 23.6 pJ, neuron updates at 81 pJ), with its fixed-point test accuracy.
- GRU: the baseline of ``benchmarks/baselines_spoken_digits.py`` (``spoken_digits_baselines.json``): ``GRU(H)`` on
  ``n_in`` inputs over ``T`` bins, mean over time, ``Linear(H, classes)``; ``T * 3 H (n_in + H) + H * classes``
  MACs (dense: what a GPU or CPU executes; gate nonlinearities not counted, they would add) at the 45 nm FP32
  (4.6 pJ) and INT8 (0.23 pJ) MAC costs.
- float SNN: the float recipe (``protocol.float``: adLIF, not deployable on Loihi) run densely on a GPU or CPU, as it
  is trained and tested: per step ``n_in H`` input MACs, ``H^2`` per further layer, ``H^2`` per recurrent layer and
  ``H classes`` for the readout (:func:`float_snn_macs`; neuron updates and BatchNorm not counted), at the same
  FP32 MAC cost.

    python benchmarks/spoken_digits_energy.py --out benchmarks/results/spoken_digits_energy.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def gru_macs(T: int, hidden: int, n_in: int, classes: int) -> int:
    return T * 3 * hidden * (n_in + hidden) + hidden * classes


#: the float example's hidden layers that carry recurrent weights (``examples/train_shd.py`` ARCHS)
RECURRENT_ARCHS = ("recurrent", "alif", "adlif")


def float_snn_macs(T: int, n_in: int, hidden: int, layers: int, classes: int, recurrent: bool) -> int:
    """Dense MACs of one inference of the float example's network: ``layers`` hidden layers of ``hidden`` neurons
    (each with ``hidden x hidden`` recurrent weights when ``recurrent``) and a linear readout, over ``T`` steps."""
    per_step = n_in * hidden + (layers - 1) * hidden * hidden + (layers * hidden * hidden if recurrent else 0)
    return T * (per_step + hidden * classes)


def float_snn(recipe: dict, classes: int = 20) -> dict | None:
    """The float recipe's dense MACs and FP32 energy (None for a results file without a float run or its input)."""
    from neurosynth.hardware.energy import get_cost_model

    f = recipe.get("protocol", {}).get("float")
    if not f or not f.get("input") or not f.get("model"):
        return None
    m, inp = f["model"], f["input"]
    T = int(round(float(inp["window_ms"]) / float(inp["dt_ms"])))
    if m.get("arch") == "delays":  # a K-tap synapse per weight: not this formula
        return None
    macs = float_snn_macs(T, int(inp["channels"]), int(m["hidden"]), int(m["layers"]), classes,
                          m.get("arch") in RECURRENT_ARCHS)
    return {"accuracy": recipe["test_accuracy"], "arch": m["arch"], "hidden": int(m["hidden"]),
            "layers": int(m["layers"]), "T": T, "inputs": int(inp["channels"]), "macs": macs,
            "energy_j_cmos45_fp32": macs * get_cost_model("cmos45_fp32").e_mac_pj * 1e-12, "run": f.get("run")}


def compare(recipe: dict, baselines: dict, *, gru_T: int = 40, gru_inputs: int = 140, classes: int = 20) -> dict:
    from neurosynth.hardware.energy import get_cost_model

    loihi = recipe["protocol"]["loihi"]
    check = loihi["lava_check"]
    e = check["energy"]
    H = int(baselines["protocol"]["models"]["gru"]["hidden"])
    macs = gru_macs(gru_T, H, gru_inputs, classes)
    snn_j = e["loihi_nj"] * 1e-9
    gru = {"accuracy": baselines["gru"], "hidden": H, "T": gru_T, "inputs": gru_inputs, "macs": macs}
    for cm in ("cmos45_fp32", "cmos45_int8"):
        gru[f"energy_j_{cm}"] = macs * get_cost_model(cm).e_mac_pj * 1e-12
        gru[f"snn_over_{cm}"] = snn_j / gru[f"energy_j_{cm}"]
    return {"snn_loihi": {"accuracy_fixed_point": recipe["loihi_fixed_accuracy"], "T": e["T"],
                          "synaptic_ops": e["syn_ops"], "neuron_updates": e["neuron_updates"], "energy_j": snn_j,
                          "samples": check["samples"], "run": loihi["run"], "command": loihi["command"]},
            "gru": gru,
            **({"float_snn": fs} if (fs := float_snn(recipe, classes)) else {}),
            "cost_models": {c: get_cost_model(c).to_dict() for c in ("loihi", "cmos45_fp32", "cmos45_int8")},
            "what": "energy per inference from operation counts and per-operation costs (arithmetic only; memory "
                    "traffic, static power and Loihi's routing are not modelled): the Loihi SNN's counts on its Lava "
                    "check samples, the GRU's dense MACs from its architecture"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=str(RESULTS / "spoken_digits_recipe.json"))
    p.add_argument("--baselines", default=str(RESULTS / "spoken_digits_baselines.json"))
    p.add_argument("--out", default=None, help="write the comparison as JSON (atomically)")
    args = p.parse_args(argv)
    from neurosynth.io import read_json, write_json

    doc = compare(read_json(args.recipe), read_json(args.baselines))
    doc["command"] = " ".join(["python", "benchmarks/spoken_digits_energy.py", *(argv or sys.argv[1:])])
    s, g = doc["snn_loihi"], doc["gru"]
    print(f"SNN on Loihi ({s['accuracy_fixed_point']:.1%} fixed point, T={s['T']}): {s['synaptic_ops']:,.0f} synaptic "
          f"ops, {s['neuron_updates']:,.0f} neuron updates -> {s['energy_j'] * 1e6:.1f} uJ per inference")
    print(f"GRU({g['hidden']}) ({g['accuracy']:.1%}, {g['T']} bins x {g['inputs']} inputs): {g['macs']:,} MACs -> "
          f"{g['energy_j_cmos45_fp32'] * 1e6:.2f} uJ FP32, {g['energy_j_cmos45_int8'] * 1e6:.3f} uJ INT8; the SNN "
          f"costs {g['snn_over_cmos45_fp32']:.1f}x the FP32 GRU and {g['snn_over_cmos45_int8']:.0f}x the INT8 GRU")
    if "float_snn" in doc:
        f = doc["float_snn"]
        print(f"float SNN ({f['layers']} x {f['arch']} {f['hidden']}, {f['accuracy']:.1%}, {f['T']} bins x {f['inputs']} "
              f"inputs) run densely: {f['macs']:,} MACs -> {f['energy_j_cmos45_fp32'] * 1e6:.1f} uJ FP32, "
              f"{f['macs'] / g['macs']:.1f}x the GRU's MACs")
    if args.out:
        write_json(args.out, doc)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
