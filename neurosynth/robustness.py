"""Adversarial robustness of trained models through torchattacks.

``evaluate_robustness(model, x, y, attacks=[...])`` returns clean and robust accuracy per attack. The model
is wrapped by :class:`LogitsModel` so that torchattacks sees one ``(N, classes)`` logits tensor for
``[N, C, H, W]`` images in [0, 1] (time-first SNNs get the image repeated over ``time_steps`` and their
outputs averaged over time).

White-box gradients: with ``gradient="true"`` (default, the honest setting) every rule-carrying layer
backpropagates through its real weights during the attack (:func:`neurosynth.rules.true_gradients`), so
FGSM/PGD/APGD/TPGD use the exact input gradient of the trained network. ``gradient="feedback"`` lets the
gradient flow through the learning rules' feedback matrices (what a naive attack on an FA/SF model does;
the published BioNAS and Biotorch attacks did this), which measures gradient obfuscation rather than
robustness. The output states which one was used.

One L-inf budget per run (``eps``; the CLI's ``--eps``, default 8/255) for every attack that has one, unless set
per attack; PGD's and TPGD's step is eps / 4 unless set (:func:`attack_params`). The paper's parameters
(Sec. 3.5), kept in :data:`PAPER_DEFAULTS` and used by the library when ``eps`` is None: FGSM eps 0.35; PGD eps 0.35, alpha 2/255 (here
eps / 4), 10 steps, random start; TPGD eps 8/255, alpha 2/255, 7 steps; APGD Linf eps 8/255, 50 steps, 1 restart;
Square Linf eps 8/255 (torchattacks' 5000 queries); OnePixel 1 pixel, popsize 10, 10 steps; transfer: FGSM
eps 8/255 crafted on a surrogate model (the paper used a RobustBench model; here a BP-trained surrogate
given by the caller) and evaluated on the target.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn

from .registry import Registry

ATTACKS: Registry = Registry("attack")  # name -> fn(torchattacks, model, params)


PAPER_DEFAULTS: dict[str, dict] = {
    "fgsm": {"eps": 0.35},
    "pgd": {"eps": 0.35, "alpha": 2 / 255, "steps": 10, "random_start": True},
    "tpgd": {"eps": 8 / 255, "alpha": 2 / 255, "steps": 7},
    "apgd": {"norm": "Linf", "eps": 8 / 255, "steps": 50, "n_restarts": 1},
    "square": {"norm": "Linf", "eps": 8 / 255, "n_queries": 5000, "n_restarts": 1},
    "onepixel": {"pixels": 1, "steps": 10, "popsize": 10},
    "transfer": {"eps": 8 / 255},
}
DEFAULT_EPS = 8 / 255  # the one L-inf budget of a CLI run (every attack with an eps), unless set per attack
STEP_FRACTION = {"pgd": 4.0, "tpgd": 4.0}  # iterative attacks: step alpha = eps / 4 (the paper's 2/255 at 8/255),
# so PGD's 10 steps reach the eps ball (2.5 eps of travel) whatever eps is


def attack_params(name: str, eps: float | None = None, override: dict | None = None) -> dict:
    """The parameters attack ``name`` runs with: :data:`PAPER_DEFAULTS`, then ``eps`` (one budget for every attack
    that has one), then ``override`` (per attack); the step of PGD/TPGD follows eps unless ``alpha`` is given.
    Raises ValueError for an unknown key or a value of the wrong kind (non-numeric, NaN, negative eps...)."""
    if name not in PAPER_DEFAULTS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(PAPER_DEFAULTS)}")
    override = dict(override or {})
    base = PAPER_DEFAULTS[name]
    unknown = sorted(set(override) - set(base))
    if unknown:
        raise ValueError(f"{name} has no parameter {', '.join(unknown)}; its parameters: {', '.join(base)}")
    params = dict(base)
    if eps is not None and "eps" in params:
        params["eps"] = eps
    for key, value in override.items():
        kind = type(base[key])
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok and kind is int:
                ok = float(value).is_integer()
        if not ok:
            wanted = {bool: "true or false", str: "a string", int: "a whole number"}.get(kind, "a finite number")
            raise ValueError(f"{name}.{key} takes {wanted} (default {base[key]!r}); got {value!r}")
        params[key] = int(value) if kind is int else value
    for key, value in params.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value > 0:
            raise ValueError(f"{name}.{key} must be > 0; got {value!r}")
    if "eps" in params and not params["eps"] <= 1:
        raise ValueError(f"{name}.eps must lie in (0, 1] (images are in [0, 1]); got {params['eps']!r}")
    if name in STEP_FRACTION and "alpha" not in override:
        params["alpha"] = params["eps"] / STEP_FRACTION[name]
    return params


def check_eps(eps) -> float:
    """``--eps``: a finite number in (0, 1]; ValueError naming the problem otherwise."""
    try:
        value = float(eps)
    except (TypeError, ValueError) as e:
        raise ValueError(f"eps must be a number in (0, 1], e.g. 0.0314 (8/255); got {eps!r}") from e
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"eps must be a number in (0, 1], e.g. 0.0314 (8/255); got {eps!r}")
    return value


def eps_label(result: dict) -> str:
    """``eps 0.0314 (8/255)`` when every attack with an eps used the same one, else ``eps per attack``."""
    values = {r["params"]["eps"] for r in result["attacks"].values() if "eps" in r.get("params", {})}
    if len(values) != 1:
        return "eps per attack" if values else ""
    (v,) = values
    frac = v * 255
    return f"eps {v:.4g}" + (f" ({round(frac)}/255)" if abs(frac - round(frac)) < 1e-6 else "")


WHITE_BOX = {"fgsm": True, "pgd": True, "tpgd": True, "apgd": True, "square": False, "onepixel": False,
             "transfer": False}


class LogitsModel(nn.Module):
    """Present any classifier as ``images [N, C, H, W] -> logits [N, classes]`` for torchattacks."""

    def __init__(self, model: nn.Module, input_shape=None, time_steps: int | None = None):
        super().__init__()
        self.model = model
        self.input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)
        self.time_steps = time_steps

    def forward(self, x):
        n = x.shape[0]
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            x = x.reshape(n, *self.input_shape)
        if self.time_steps:
            x = x.unsqueeze(0).expand(self.time_steps, *x.shape)
        out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if self.time_steps:
            out = out.mean(0)
        return out.reshape(n, -1)


def _torchattacks():
    try:
        import torchattacks
    except ImportError as e:  # pragma: no cover
        from .errors import MissingExtraError

        raise MissingExtraError("torchattacks", "robust", "adversarial attacks") from e
    return torchattacks


ATTACKS.add("fgsm", lambda ta, m, p: ta.FGSM(m, eps=p["eps"]))
ATTACKS.add("pgd", lambda ta, m, p: ta.PGD(m, eps=p["eps"], alpha=p["alpha"], steps=int(p["steps"]),
                                           random_start=bool(p["random_start"])))
ATTACKS.add("tpgd", lambda ta, m, p: ta.TPGD(m, eps=p["eps"], alpha=p["alpha"], steps=int(p["steps"])))
ATTACKS.add("apgd", lambda ta, m, p: ta.APGD(m, norm=p["norm"], eps=p["eps"], steps=int(p["steps"]),
                                             n_restarts=int(p["n_restarts"]), seed=int(p.get("seed", 0))))
ATTACKS.add("square", lambda ta, m, p: ta.Square(m, norm=p["norm"], eps=p["eps"], n_queries=int(p["n_queries"]),
                                                 n_restarts=int(p["n_restarts"]), seed=int(p.get("seed", 0))))
ATTACKS.add("onepixel", lambda ta, m, p: ta.OnePixel(m, pixels=int(p["pixels"]), steps=int(p["steps"]),
                                                     popsize=int(p["popsize"])))
ATTACKS.add("transfer", lambda ta, m, p: ta.FGSM(m, eps=p["eps"]))  # crafted on the surrogate


def make_attack(name: str, model: nn.Module, params: dict):
    """A torchattacks attack ``name`` on ``model`` with ``params`` (see :data:`PAPER_DEFAULTS`)."""
    return ATTACKS.get(name)(_torchattacks(), model, dict(params))


def train_surrogate(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, epochs: int = 3, seed: int = 0,
                    batch_size: int = 64) -> nn.Module:
    """A small backprop CNN trained on ``(x, y)``: the source model of the transfer attack."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        c = x.shape[1]
        net = nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(int(epochs)):
        perm = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), batch_size):
            j = perm[s:s + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[j]), y[j]).backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for s in range(0, len(y), batch_size):
        correct += int((model(x[s:s + batch_size]).argmax(1) == y[s:s + batch_size]).sum())
    return correct / max(len(y), 1)


def _gradient_context(model: nn.Module, gradient: str):
    if gradient == "true":
        from .rules import true_gradients

        return true_gradients(model)
    return contextlib.nullcontext(model)


def has_feedback_rules(model: nn.Module) -> bool:
    from .rules import BioLayer

    return any(isinstance(m, BioLayer) and m.rule.name != "bp" for m in model.modules())


def evaluate_robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: list[str], *,
                        gradient: str = "true", overrides: dict[str, dict] | None = None,
                        surrogate: nn.Module | None = None, batch_size: int = 128, seed: int = 0,
                        progress: bool = False, eps: float | None = None) -> dict:
    """Clean and robust accuracy of ``model`` (already a logits model) on ``(x, y)`` for each attack.

    ``eps``: one L-inf budget for every attack that has one (None: :data:`PAPER_DEFAULTS`'); ``overrides`` set
    parameters per attack (:func:`attack_params`)."""
    from tqdm.auto import tqdm

    if gradient not in ("true", "feedback"):
        raise ValueError(f"gradient must be 'true' or 'feedback', got {gradient!r}")
    unknown = [a for a in attacks if a not in PAPER_DEFAULTS]
    if unknown:
        raise ValueError(f"unknown attacks {unknown}; choose from {sorted(PAPER_DEFAULTS)}")
    if "transfer" in attacks and surrogate is None:
        raise ValueError("the transfer attack needs a surrogate model")
    overrides = overrides or {}
    if eps is not None:
        eps = check_eps(eps)
    all_params = {name: attack_params(name, eps, overrides.get(name)) for name in attacks}  # validate before work
    model.eval()
    feedback = has_feedback_rules(model)
    source = ("true backprop through the trained weights" if gradient == "true" or not feedback
              else "the learning rules' feedback path (pseudo-gradient)")
    out = {"n_samples": int(len(y)), "clean_accuracy": accuracy(model, x, y), "gradient": gradient,
           "white_box_gradient_source": source, "model_has_feedback_rules": feedback, "attacks": {}}
    for name in tqdm(attacks, desc="attacks", disable=not progress):
        params = all_params[name]
        torch.manual_seed(seed)
        target = surrogate if name == "transfer" else model
        atk = make_attack(name, target, params)
        adv_all = []
        ctx = _gradient_context(model, gradient) if name != "transfer" else contextlib.nullcontext()
        with ctx:
            for s in range(0, len(y), batch_size):
                adv_all.append(atk(x[s:s + batch_size], y[s:s + batch_size]).detach())
        adv = torch.cat(adv_all)
        linf = float((adv - x).abs().amax()) if len(adv) else math.nan
        out["attacks"][name] = {"robust_accuracy": accuracy(model, adv, y), "params": params,
                                "white_box": WHITE_BOX[name], "max_linf": linf,
                                "gradient_source": (source if WHITE_BOX[name] else
                                                    "surrogate model" if name == "transfer" else "none (black-box)")}
    return out


def format_table(result: dict) -> str:
    rows = [("clean", result["clean_accuracy"], "-", "-")]
    for name, r in result["attacks"].items():
        e = r.get("params", {}).get("eps")
        rows.append((name, r["robust_accuracy"], f"{e:.4g}" if e is not None else "-", r["gradient_source"]))
    lines = ["| attack | accuracy | eps (L-inf) | gradient |", "|---|---|---|---|"]
    lines += [f"| {n} | {a * 100:.2f} | {e} | {g} |" for n, a, e, g in rows]
    return "\n".join(lines)
