"""The instance's on-start script and environment, rendered from a plan.

The on-start script is short and holds no secret (Vast stores it with the
instance and shows it on the website): it exports the plan's values as SHAKYO_*
variables, clones the repository at the pinned commit and hands over to
``reference/cloud/bootstrap.sh`` of that commit, which does the real work.

The secrets travel separately, as the instance's environment (:func:`instance_env`).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
from pathlib import Path

from reference.cloud.plan import Plan
from reference.cloud.secrets import Keys
from reference.errors import CloudError

__all__ = ["resolve_ref", "tool_pins", "plan_variables", "render_onstart", "instance_env"]

# The CLIs the instance needs before (and even without) the project installs: with them
# it can always publish its logs and destroy itself.
_TOOLS = ("vastai", "kaggle", "six")


def resolve_ref(repo_root: Path, ref: str) -> str:
    """The full commit of `ref` in the local repository (the instance checks out exactly this)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo_root), "rev-parse", "--verify", f"{ref}^{{commit}}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        raise CloudError(
            f"[project] ref {ref}: not a commit of the git repository at {repo_root}; "
            "commit your work (the instance installs a commit, not your working tree)"
        ) from None
    return out.stdout.strip()


def tool_pins() -> str:
    """`vastai==X kaggle==Y six==Z`: the versions the cloud extra installed here."""
    pins = []
    for name in _TOOLS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise CloudError(
                f"{name} is not installed; install the cloud extra: pip install -e '.[cloud]'"
            ) from None
    return " ".join(pins)


def plan_variables(plan: Plan, commit: str, deadline: int, resume_from: str = "") -> dict[str, str]:
    """The SHAKYO_* values the bootstrap reads (no secret among them)."""
    t, d, p, i = plan["train"], plan["data"], plan["publish"], plan["instance"]
    overrides = []
    for key, value in t["overrides"].items():
        # JSON always: `shakyo train` parses each VALUE as JSON ("true" must stay a string).
        overrides += [shlex.quote(key), shlex.quote(json.dumps(value))]
    return {
        "SHAKYO_PLAN": plan.name,
        "SHAKYO_REPO": plan["project"]["repo"],
        "SHAKYO_REF": commit,
        "SHAKYO_CONFIG": t["config"],
        "SHAKYO_OVERRIDES": " ".join(overrides),
        "SHAKYO_SEEDS": " ".join(str(s) for s in plan.seeds),
        "SHAKYO_RUNS": " ".join(c["FNAME"] for c in plan.train_configs),
        "SHAKYO_WEIGHTS": t["weights"],
        "SHAKYO_DATA_SOURCE": d["source"],
        "SHAKYO_DATA_REF": d["dataset"] if d["source"] == "dataset" else d["competition"],
        "SHAKYO_DATA_SHA256": d["sha256"],
        "SHAKYO_LABELS": d["labels"],
        "SHAKYO_PUBLISH": p["dataset"],
        "SHAKYO_PUBLISH_TITLE": p["title"],
        "SHAKYO_LICENSE": p["license"],
        "SHAKYO_LOGS_DATASET": plan.logs_dataset,
        "SHAKYO_RESUME_FROM": resume_from,
        "SHAKYO_DEADLINE": str(int(deadline)),
        "SHAKYO_MARGIN": str(int(i["publish_margin_min"] * 60)),
        "SHAKYO_PIP_TOOLS": tool_pins(),
    }


def render_onstart(variables: dict[str, str]) -> str:
    """The on-start script: exports, clone at the commit, exec the bootstrap of that commit."""
    for name in variables:
        if not re.fullmatch(r"SHAKYO_[A-Z0-9_]+", name):
            raise ValueError(f"not a SHAKYO_ variable: {name}")
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())
    return f"""#!/bin/bash
# shakyo cloud on-start, plan {variables["SHAKYO_PLAN"]} (written by `shakyo cloud launch`).
# No secret here: the Kaggle/wandb keys arrive as environment variables, and Vast gives the
# container CONTAINER_ID and CONTAINER_API_KEY, with which it destroys itself at the end.
{exports}
export SHAKYO_WORK=${{SHAKYO_WORK:-/workspace/shakyo}}
mkdir -p "$SHAKYO_WORK" && cd "$SHAKYO_WORK" || exit 1
command -v git >/dev/null || {{ apt-get update -qq && apt-get install -y -qq git; }}
[ -d src/.git ] || git clone -q "$SHAKYO_REPO" src || exit 1
git -C src checkout -q "$SHAKYO_REF" 2>/dev/null ||
    {{ git -C src fetch -q origin && git -C src checkout -q "$SHAKYO_REF"; }} || exit 1
exec bash src/reference/cloud/bootstrap.sh
"""


def instance_env(keys: Keys, send_wandb: bool) -> dict[str, str]:
    """The instance's environment: the Kaggle key (and the wandb key when the run tracks with wandb).

    The Vast key is not among them: the instance uses its own CONTAINER_API_KEY.
    """
    user, kaggle = keys.require_kaggle()
    env = {"KAGGLE_USERNAME": user, "KAGGLE_KEY": kaggle.value}
    if send_wandb:
        if keys.wandb is None:
            raise CloudError(
                "TRACKER wandb needs a wandb key: set WANDB_API_KEY or run `wandb login` "
                "(~/.netrc), or remove TRACKER from [train] overrides"
            )
        env["WANDB_API_KEY"] = keys.wandb.value
    return env
