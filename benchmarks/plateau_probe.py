"""Why a CoaT_ULSTM from random weights first predicts only the background (not a test).

    .venv/bin/python benchmarks/plateau_probe.py [--data default|demo] [--knobs JSON]
        [--arch tiny] [--steps 0] [--lr 8e-3] [--pct 0.1] [--seed 2023]

Synthesizes the demo's record counts at 64² (``--data demo``: the demo's wider,
denser contrails; ``default``: `shakyo synth`'s defaults; ``--knobs`` adds synth
knobs, e.g. '{"width": [2, 3], "contrails_per_256": 16, "p_empty": 0.1}') and prepares them in a
temporary folder, then:

1. Linear probes. A logistic regression per pixel (features standardised, 150
   full-batch Adam steps) on the training tiles, from: the raw ash pixels of
   frame 4; the randomly initialised encoder's stage-1 map (x1); the decoder's
   dec1 map; the FPN output; the input of the last 1x1 conv. Each prints the
   best training Dice over thresholds: how much contrail information a linear
   read-out finds there. Maps at half resolution are probed against the 2x2
   max-pooled mask.
2. With ``--steps N``: N optimizer steps of a plain PyTorch loop with the
   demo's optimizer (Over9000, BS 4, GradientClip 3, the published loss, the
   training augmentation), fastai's one-cycle LR curve (``combined_cos``: cosine
   warm-up for ``--pct`` of the steps from lr/25, cosine down; no momentum
   cycling, unlike fit_one_cycle), printing
   the validation F_th every 48 steps.

README, "Why the demo's contrails are wider", quotes its numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from fastai.callback.schedule import combined_cos  # noqa: E402

from reference.data.augment import get_aug  # noqa: E402
from reference.data.dataset import ContrailsDatasetV0  # noqa: E402
from reference.data.prepare import prepare  # noqa: E402
from reference.data.synth import synthesize  # noqa: E402
from reference.demo import DEMO_DATA  # noqa: E402
from reference.losses import loss_comb  # noqa: E402
from reference.metrics import DEFAULT_THRESHOLDS, dice_curve  # noqa: E402
from reference.models.coat import CoaT_ULSTM, coat_features, upsample_input  # noqa: E402
from reference.optim import Lookahead, Ralamb  # noqa: E402
from reference.utils import seed_everything  # noqa: E402


def best_dice(p: torch.Tensor, y: torch.Tensor, thresholds=DEFAULT_THRESHOLDS) -> float:
    """Global Dice at the best threshold (F_th's definition, reference.metrics)."""
    return float(dice_curve(p, y, thresholds).max())


def probe(feat: torch.Tensor, mask: torch.Tensor, iters: int = 150) -> float:
    """Training Dice of a per-pixel logistic regression on feat (N, C, h, w)."""
    if feat.shape[-1] != mask.shape[-1]:
        mask = F.max_pool2d(mask, mask.shape[-1] // feat.shape[-1])
    x = feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = mask.reshape(-1)
    lin = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(lin.parameters(), lr=0.1)
    for _ in range(iters):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(lin(x)[:, 0], y).backward()
        opt.step()
    with torch.no_grad():
        p = torch.sigmoid(lin(x)[:, 0])
    return best_dice(p, y, np.arange(0.05, 0.9, 0.05))


def stack(ds: ContrailsDatasetV0) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def linear_probes(model: CoaT_ULSTM, x: torch.Tensor, y: torch.Tensor) -> None:
    maps: dict[str, torch.Tensor] = {}
    model.dec2.register_forward_hook(lambda m, i, o: maps.__setitem__("dec1", o))
    model.final_conv.register_forward_hook(lambda m, i, o: maps.__setitem__("fpn", i[0]))
    model.final_conv[0].conv[-1].register_forward_hook(
        lambda m, i, o: maps.__setitem__("last", i[0])
    )
    model.eval()
    with torch.no_grad():
        x1 = coat_features(model.enc, upsample_input(x[:, :, 4]))[0]
        model(x)
    rows = [
        ("raw ash pixels, frame 4 (3 channels)", x[:, :, 4]),
        (f"encoder stage 1, x1 ({x1.shape[1]} channels)", x1),
        ("decoder dec1 (96 channels)", maps["dec1"]),
        ("FPN output (192 channels)", maps["fpn"]),
        ("input of the last 1x1 conv (48 channels)", maps["last"]),
    ]
    print("linear probe (training Dice of a per-pixel logistic regression):")
    for name, feat in rows:
        print(f"  {name:<44} {tuple(feat.shape[-2:])}  Dice {probe(feat, y):.3f}")


def train_loop(model, tiles: Path, steps: int, lr: float, pct: float, seed: int) -> None:
    train = ContrailsDatasetV0(tiles, train=True, tfms=get_aug(seed))
    xv, yv = stack(ContrailsDatasetV0(tiles, train=False))
    loader = torch.utils.data.DataLoader(train, batch_size=4, shuffle=True, drop_last=True)
    opt = Lookahead(Ralamb(model.parameters(), lr=lr, eps=1e-8))

    # fastai's one-cycle LR curve (what fit_one_cycle uses): div 25, div_final 1e5.
    lr_at = combined_cos(pct, lr / 25, lr, lr / 25 / 1e5)

    model.train()
    step, t0, losses = 0, time.perf_counter(), []
    while step < steps:
        for x, y in loader:
            for g in opt.param_groups:
                g["lr"] = float(lr_at(step / steps))
            loss = loss_comb(model(x), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            opt.step()
            step += 1
            losses.append(loss.item())
            if step % 48 == 0 or step == steps:
                model.eval()
                with torch.no_grad():
                    p = torch.cat(
                        [torch.sigmoid(model(xv[i : i + 8])) for i in range(0, len(xv), 8)]
                    )
                model.train()
                print(
                    f"  step {step:4d}  loss {np.mean(losses[-48:]):.4f}  "
                    f"validation F_th {best_dice(p, yv):.3f}  ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
            if step >= steps:
                break


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=("default", "demo"), default="default")
    parser.add_argument("--knobs", default="{}", help="synth knobs as JSON, on top of --data")
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--lr", type=float, default=8e-3)
    parser.add_argument("--pct", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shakyo-probe-"))
    try:
        extra = {
            k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.knobs).items()
        }
        knobs = {**(DEMO_DATA["knobs"] if args.data == "demo" else {}), **extra}
        s = synthesize(
            root / "data", DEMO_DATA["n_train"], DEMO_DATA["n_val"], 0, seed=args.seed,
            size=DEMO_DATA["size"], workers=1, progress=False, **knobs,
        )  # fmt: skip
        prepare(root / "data", root / "tiles", workers=1, progress=False)
        print(
            f"data: {args.data}{f' + {extra}' if extra else ''}, {s['records']} records at 64², "
            f"{100 * s['contrail_fraction']:.1f}% contrail pixels; model CoaT_ULSTM {args.arch}, "
            f"random init, seed {args.seed}"
        )
        x, y = stack(ContrailsDatasetV0(root / "tiles", train=True))
        seed_everything(args.seed)
        linear_probes(CoaT_ULSTM(arch=args.arch), x, y)
        if args.steps:
            print(f"training {args.steps} steps, LR_MAX {args.lr:g}, PCT_START {args.pct:g}:")
            seed_everything(args.seed)
            train_loop(
                CoaT_ULSTM(arch=args.arch), root / "tiles", args.steps, args.lr, args.pct, args.seed
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
