"""Experiment tracking, as the learner used it: `TRACKER wandb`.

Adds fastai's own ``WandbCallback`` (per-batch ``train_loss``, ``raw_loss`` and
the optimizer's hyper-parameters ``lr_0``, ``mom_0``...; per-epoch
``valid_loss`` and ``f_th``) and, at the end, the Dice-over-threshold curve of
the best epoch (``threshold_curve``, a wandb line plot) with the best F_th and
threshold in the run summary.

The wandb run id is kept in ``OUT/FNAME/wandb_id.txt``, so ``RESUME true``
continues the same wandb run. ``WANDB_MODE=offline`` logs to
``OUT/FNAME/wandb/`` without a network (``wandb sync`` uploads it later); the key
comes from ``WANDB_API_KEY`` (``shakyo cloud`` sends it to the instance like the
Kaggle key). Only rank 0 logs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from reference.errors import ConfigError

__all__ = ["tracker_callbacks"]


def _threshold_curve_callback():
    from fastai.callback.core import Callback
    from fastai.callback.wandb import WandbCallback

    class ThresholdCurveToWandb(Callback):
        """After the fit: the best epoch's Dice-over-threshold curve and summary, then finish the run."""

        order = WandbCallback.order + 1

        def after_fit(self) -> None:
            import wandb

            best = getattr(self.learn, "best_model", None)
            if best is not None and best.best_curve:
                table = wandb.Table(data=best.best_curve, columns=["threshold", "dice"])
                plot = wandb.plot.line(
                    table, "threshold", "dice", title="F_th: Dice over threshold"
                )
                wandb.log({"threshold_curve": plot})
                wandb.run.summary.update(
                    {
                        "best_f_th": float(best.best),
                        "best_threshold": best.best_threshold,
                        "best_epoch": best.best_epoch,
                    }  # fmt: skip
                )
            wandb.finish()

    return ThresholdCurveToWandb()


def _tolerate_plain_config_values() -> None:
    """Work around fastai issue #4173 (open): WandbCallback.before_fit formats the Learner's
    config with fastcore's init_args, which calls vars() and raises TypeError on every int,
    str or bool (fastai 2.8.12 with fastcore >= 2.2.21). Values without a __dict__ are kept
    as they are, which is what the callback did before."""
    import fastai.callback.wandb as fw
    from fastcore.basics import init_args

    if getattr(fw._format_config_value, "_shakyo", False):
        return

    def format_value(v):
        if isinstance(v, list):
            return [format_value(item) for item in v]
        try:
            args = init_args(v)
        except TypeError:
            return v
        return {**fw._format_config(args), "_name": v} if args else v

    format_value._shakyo = True
    fw._format_config_value = format_value


def tracker_callbacks(cfg: Any, run_dir: Path) -> list:
    """The callbacks for `cfg.TRACKER` (none when it is null); starts the wandb run.

    cfg: a validated Config. run_dir: OUT/FNAME (the wandb files and run id live there).
    """
    if cfg["TRACKER"] is None:
        return []
    from fastai.torch_core import rank_distrib

    if rank_distrib() != 0:
        return []
    try:
        import wandb
        from fastai.callback.wandb import WandbCallback
    except ImportError:
        raise ConfigError(
            "TRACKER wandb needs the wandb package: pip install -e '.[cloud]'"
        ) from None
    _tolerate_plain_config_values()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / "wandb_id.txt"
    if cfg["RESUME"] and id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        run_id = secrets.token_hex(4)  # wandb run ids are lowercase letters and digits
        id_file.write_text(run_id + "\n")
    wandb.init(
        project=os.environ.get("WANDB_PROJECT", "shakyo"),
        name=cfg["FNAME"],
        id=run_id,
        resume="allow",
        dir=str(run_dir),
        config=dict(cfg),
    )
    # log_preds would call show_results, which the tile DataLoaders do not have.
    return [WandbCallback(log=None, log_preds=False, log_model=False), _threshold_curve_callback()]
