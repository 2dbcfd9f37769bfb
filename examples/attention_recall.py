"""Long-range tasks for attention variants: sequential digits and associative recall over a gap.

``--task digits`` (default): scikit-learn 8x8 digits read pixel by pixel (a sequence of 64 intensities, row
major); the class is read from the last position, so a causal model must gather evidence across the whole
sequence (up to 63 positions back). Train/test split 75/25, fixed by seed 0.

``--task recall``: each sequence holds ``pairs`` key-value token pairs, then ``gap`` filler tokens, then a query marker and one
of the keys; the model must output that key's value from the last position (a long-range dependency: the
answer is ``gap + 2`` .. ``gap + 2 * pairs`` positions back). A small causal transformer (2 pre-LN blocks,
d_model 64, 4 heads) is trained with each attention core from :data:`neurosynth.attention.ATTENTION` for every
seed; we report test accuracy and the activation memory of one training step (bytes of tensors saved for
backward, counted with ``torch.autograd.graph.saved_tensors_hooks``, unique storages) -- a deterministic
stand-in for peak training memory on CPU, where torch has no allocator peak counter.

    python examples/attention_recall.py --task digits --seeds 0 1 2 --epochs 12 --out runs/attention_digits
    python examples/attention_recall.py --task recall --seeds 0 1 2 --steps 600 --out runs/attention_recall
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurosynth.attention import MultiHeadAttention
from neurosynth.rundir import RunDir, save_figure
from neurosynth.training import clamp_params_

N_KEYS = N_VALUES = 16
FILL, QUERY = N_KEYS + N_VALUES, N_KEYS + N_VALUES + 1
VOCAB = QUERY + 1
VARIANTS = ["standard", "softmax_explicit", "competitive", "oscillatory", "gain"]


def make_batch(batch: int, pairs: int, gap: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    keys = torch.argsort(torch.rand(batch, N_KEYS, generator=g), dim=1)[:, :pairs]
    values = torch.randint(0, N_VALUES, (batch, pairs), generator=g)
    seq = torch.empty(batch, 2 * pairs, dtype=torch.long)
    seq[:, 0::2], seq[:, 1::2] = keys, values + N_KEYS
    which = torch.randint(0, pairs, (batch,), generator=g)
    q = keys.gather(1, which[:, None])
    x = torch.cat([seq, torch.full((batch, gap), FILL), torch.full((batch, 1), QUERY), q], 1)
    return x, values.gather(1, which[:, None])[:, 0]


class Block(nn.Module):
    def __init__(self, d: int, heads: int, variant: str):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, heads, attention=variant)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x), is_causal=True)
        return x + self.mlp(self.ln2(x))


class RecallModel(nn.Module):
    def __init__(self, length: int, variant: str, d: int = 64, heads: int = 4, layers: int = 2,
                 n_out: int = N_VALUES, continuous: bool = False):
        super().__init__()
        self.tok = nn.Linear(1, d) if continuous else nn.Embedding(VOCAB, d)
        self.continuous = continuous
        self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads, variant) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_out)

    def forward(self, x):
        h = (self.tok(x.unsqueeze(-1)) if self.continuous else self.tok(x)) + self.pos[: x.shape[1]]
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h[:, -1]))


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward pass."""
    seen: dict[int, int] = {}

    def pack(t):
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def train_step(model: nn.Module, opt, sched, x: torch.Tensor, y: torch.Tensor) -> float:
    """One clipped optimiser step on cross-entropy, then the learning-rate schedule; returns the loss."""
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    clamp_params_(model)  # keep learnable neuron parameters in range
    sched.step()
    return float(loss.detach())


def run_one(variant: str, seed: int, args) -> dict:
    torch.manual_seed(seed)
    length = 2 * args.pairs + args.gap + 2
    model = RecallModel(length, variant)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        x, y = make_batch(args.batch, args.pairs, args.gap, g)
        loss = train_step(model, opt, sched, x, y)
    train_s = time.perf_counter() - t0
    model.eval()
    gt = torch.Generator().manual_seed(10_000 + seed)  # same test set for every variant of a seed
    correct = n = 0
    with torch.no_grad():
        for _ in range(args.test_batches):
            x, y = make_batch(500, args.pairs, args.gap, gt)
            correct += int((model(x).argmax(-1) == y).sum())
            n += len(y)
    model.train()
    x, y = make_batch(args.batch, args.pairs, args.gap, torch.Generator().manual_seed(7))
    mem = saved_activation_bytes(model, x, y)
    return {"variant": variant, "seed": seed, "accuracy": correct / n, "final_loss": loss,
            "saved_activation_MiB": mem / 2**20, "train_seconds": round(train_s, 1)}


def run_digits(variant: str, seed: int, args) -> dict:
    from neurosynth.datasets.digits import load_digits_split

    xtr, ytr, xte, yte = load_digits_split(test_size=0.25, seed=0)
    torch.manual_seed(seed)
    model = RecallModel(64, variant, d=args.d_model, heads=4, layers=2, n_out=10, continuous=True)
    steps = args.epochs * ((len(xtr) + args.batch - 1) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), args.batch):
            j = perm[i:i + args.batch]
            loss = train_step(model, opt, sched, xtr[j], ytr[j])
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(-1) == yte).float().mean())
    model.train()
    mem = saved_activation_bytes(model, xtr[: args.batch], ytr[: args.batch])
    return {"variant": variant, "seed": seed, "accuracy": acc, "final_loss": loss,
            "saved_activation_MiB": mem / 2**20, "train_seconds": round(train_s, 1)}


def main(argv=None) -> int:
    from neurosynth.apps.cli import ScriptHelpFormatter

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=ScriptHelpFormatter)
    ap.add_argument("--task", choices=["digits", "recall"], default="digits")
    ap.add_argument("--epochs", type=int, default=12, help="training epochs (digits task)")
    ap.add_argument("--d-model", type=int, default=32, help="model width (digits task; recall uses 64)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=VARIANTS)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--gap", type=int, default=24)
    ap.add_argument("--test-batches", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("runs/attention_recall"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tqdm.auto import tqdm

    rows = []
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    for v, s in tqdm(jobs, desc="runs", unit="run"):
        rows.append(run_digits(v, s, args) if args.task == "digits" else run_one(v, s, args))
        tqdm.write(json.dumps(rows[-1]))
    summary = {}
    for v in args.variants:
        acc = np.array([r["accuracy"] for r in rows if r["variant"] == v])
        mem = np.array([r["saved_activation_MiB"] for r in rows if r["variant"] == v])
        secs = np.array([r["train_seconds"] for r in rows if r["variant"] == v])
        summary[v] = {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1
                      else 0.0, "accuracy_per_seed": acc.tolist(), "saved_activation_MiB": float(mem.mean()),
                      "train_seconds_mean": float(secs.mean())}
    with RunDir.create(args.out, kind="example") as run:
        task = ({"task": "recall", "pairs": args.pairs, "gap": args.gap, "length": 2 * args.pairs + args.gap + 2,
                 "chance": 1 / N_VALUES} if args.task == "recall" else
                {"task": "sequential digits (pixel by pixel)", "length": 64, "chance": 0.1})
        run.write_json("metrics.json", {"summary": summary, "runs": rows, "task": task})
        table = ["| attention | accuracy (mean ± sd over seeds) | per seed | saved activations (MiB) | train s |",
                 "|---|---:|---|---:|---:|"]
        for v, s in summary.items():
            table.append(f"| {v} | {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f}% | "
                         f"{', '.join(f'{100 * a:.1f}' for a in s['accuracy_per_seed'])} | "
                         f"{s['saved_activation_MiB']:.2f} | {s['train_seconds_mean']:.0f} |")
        text = "\n".join(table) + "\n"
        (args.out / "results.md").write_text(text)
        print(text)
        _plot(summary, run.plot_path(f"attention_{args.task}"), task["chance"])
        run.write_manifest(["python", "examples/attention_recall.py", *(argv if argv is not None else sys.argv[1:])],
                           vars(args) | {"out": str(args.out)}, args.seeds[0], summary)
    return 0


def _plot(summary: dict, path: Path, chance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.bar(names, [100 * summary[n]["accuracy_mean"] for n in names],
           yerr=[100 * summary[n]["accuracy_std"] for n in names], capsize=3)
    a1.set_ylabel("test accuracy (%)")
    a1.axhline(100 * chance, color="k", ls=":", lw=1)
    a2.bar(names, [summary[n]["saved_activation_MiB"] for n in names], color="tab:orange")
    a2.set_ylabel("saved activations per step (MiB)")
    for a in (a1, a2):
        a.tick_params(axis="x", rotation=30, labelsize=7)
    fig.suptitle("attention variants (bars: mean over seeds, error: sd; dotted: chance)", fontsize=9)
    save_figure(fig, path)


if __name__ == "__main__":
    from neurosynth.errors import run_script

    raise SystemExit(run_script(main))
