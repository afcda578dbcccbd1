#!/usr/bin/env python3
"""How validation accuracy holds up as the global batch grows, per optimizer, on this machine.

    .venv/bin/python tools/batch_study.py [--batches 128 1024 4096] \
        [--optimizers sgd lars lamb] [--epochs 6] [--train-per-class 1500] \
        [--lr-factors 1] [--out runs/batch_study] [--plot docs/img/batch-study.png]

Trains AlexNet-BN (model=paper_bn, at debug=tiny's width and 67-pixel input) on the
built-in shapes dataset, enlarged so that the largest batch still takes a few steps
per epoch (`data.shapes.train_per_class`), at every global batch with every optimizer,
for the same number of epochs:

- sgd: SGD with momentum, the learning rate scaled linearly with the batch
  (optim.lr at optim.base_batch_size), a linear warmup and the polynomial decay;
- lars: LARS (training/lars.py), the same warmup and decay;
- lamb: Keras's LAMB, the same warmup and decay.

With --lr-factors, every optimizer is also trained at those multiples of its config's
rate (conf/optim/<name>.yaml's lr), and each point is the best of them: each optimizer
tuned at each batch over the same grid, as the large-batch papers tune theirs.

Each run is `alexnet-train` in a process of its own, in a run directory of its own
under --out (a run already finished there is read back, not trained again). It prints
the final validation top-1 of every run as a table, writes them to --out/results.json,
and plots top-1 against the batch, one line per optimizer (--plot).
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_lr(optimizer: str) -> float:
    """The optimizer's rate at its base batch, from its config group."""
    from omegaconf import OmegaConf

    return float(OmegaConf.load(os.path.join(REPO, "conf", "optim", f"{optimizer}.yaml")).lr)


def overrides(args, optimizer: str, batch: int, factor: float = 1.0) -> list[str]:
    """The run's Hydra overrides: the same network, data and epochs for every point."""
    rate = [] if factor == 1.0 else [f"optim.lr={factor * config_lr(optimizer):g}"]
    return [*rate,
        "debug=tiny", "model=paper_bn", f"optim={optimizer}", "optim.schedule=poly",
        f"optim.warmup_epochs={args.warmup_epochs}", f"data.global_batch_size={batch}",
        f"data.eval_batch_size={args.eval_batch}",
        f"data.shapes.train_per_class={args.train_per_class}",
        f"data.shapes.val_per_class={args.val_per_class}",
        f"data.shuffle_buffer={10 * args.train_per_class}", f"trainer.epochs={args.epochs}",
        "trainer.checkpoint_every_steps=100000", "trainer.log_every_steps=50",
        f"trainer.seed={args.seed}", *args.extra,
    ]  # fmt: skip


def train(args, optimizer: str, batch: int, factor: float = 1.0) -> dict:
    """The run's result.json (its last step and validation figures), training it if needed."""
    name = f"{optimizer}-{batch}" + ("" if factor == 1.0 else f"-lr{factor:g}x")
    run_dir = os.path.join(args.out, name)
    result = os.path.join(run_dir, "result.json")
    if not os.path.exists(result):
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "alexnet_dist.cli.train",
             *overrides(args, optimizer, batch, factor),
             f"hydra.run.dir={run_dir}"],
            cwd=REPO, capture_output=True, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )  # fmt: skip
        if done.returncode != 0 or not os.path.exists(result):
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        print(f"  {name}: {time.monotonic() - start:.0f} s", flush=True)
    with open(result) as f:
        return json.load(f)


def plot(results: dict, path: str, epochs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for optimizer, points in results.items():
        batches = sorted(int(b) for b in points)
        ax.plot(batches, [100 * points[str(b)]["top1"] for b in batches], marker="o",
                label=optimizer)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("global batch")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"AlexNet-BN on the shapes dataset, {epochs} epochs at every batch")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[128, 1024, 4096])
    p.add_argument("--optimizers", nargs="+", default=["sgd", "lars", "lamb"],
                   choices=["sgd", "lars", "lamb"])  # fmt: skip
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--train-per-class", type=int, default=1500,
                   help="training images per class of the 10 (the largest batch should take "
                        "a few steps per epoch)")  # fmt: skip
    p.add_argument("--val-per-class", type=int, default=100)
    p.add_argument("--eval-batch", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-factors", type=float, nargs="+", default=[1.0],
                   help="multiples of each optimizer's config rate to train at; each point "
                        "is the best of them")  # fmt: skip
    p.add_argument("--out", default=os.path.join("runs", "batch_study"))
    p.add_argument("--plot", default=None, help="a PNG of top-1 against the batch")
    p.add_argument("extra", nargs="*", help="more Hydra overrides for every run")
    args = p.parse_args(argv)
    images = 10 * args.train_per_class
    if max(args.batches) > images:
        p.error(f"--train-per-class {args.train_per_class} gives {images} images, fewer than "
                f"the batch of {max(args.batches)}")  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    results, runs = {}, {}
    for optimizer in args.optimizers:
        for batch in args.batches:
            for factor in args.lr_factors:
                got = train(args, optimizer, batch, factor)
                point = {"step": got["step"], "lr_factor": factor, **got["val"]}
                runs.setdefault(optimizer, {}).setdefault(str(batch), []).append(point)
            best = max(runs[optimizer][str(batch)], key=lambda r: r["top1"])
            results.setdefault(optimizer, {})[str(batch)] = best
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"epochs": args.epochs, "train_images": images, "lr_factors": args.lr_factors,
                   "results": results, "runs": runs}, f, indent=1)  # fmt: skip
    tuned = len(args.lr_factors) > 1
    print(
        f"validation top-1 after {args.epochs} epochs of {images} images (steps in brackets"
        + (", and the best of the rate factors" if tuned else "")
        + ")"
    )
    width = 22 if tuned else 14
    print(f"{'batch':>8} " + " ".join(f"{o:>{width}}" for o in args.optimizers))
    for batch in args.batches:
        cells = []
        for o in args.optimizers:
            r = results[o][str(batch)]
            cell = f"{100 * r['top1']:7.1f} % ({r['step']:>4})"
            cells.append(cell + (f" x{r['lr_factor']:g}" if tuned else ""))
        print(f"{batch:>8} " + " ".join(f"{c:>{width}}" for c in cells))
    if tuned:
        print("every run: optimizer batch factor top-1")
        for o in args.optimizers:
            for batch in args.batches:
                for r in runs[o][str(batch)]:
                    print(f"  {o} {batch} x{r['lr_factor']:g} {100 * r['top1']:.1f} %")
    if args.plot:
        plot(results, args.plot, args.epochs)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
