"""What `shakyo cloud` remembers about a launched plan: `.shakyo/cloud/<plan>.json`.

Instance id, offer, price, launch time, deadline, commit: enough for `status`,
`logs`, `destroy` and the watchdog to find the instance again from another
terminal. Never a key. Written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reference.errors import CloudError
from reference.utils import atomic_write_text

__all__ = ["state_dir", "load_state", "save_state"]


def state_dir() -> Path:
    """`$SHAKYO_STATE_DIR/cloud`, default `.shakyo/cloud` in the current directory."""
    return Path(os.environ.get("SHAKYO_STATE_DIR") or ".shakyo") / "cloud"


def _path(plan_name: str) -> Path:
    return state_dir() / f"{plan_name}.json"


def load_state(plan_name: str, required: bool = True) -> dict[str, Any] | None:
    """The saved state of `plan_name`; CloudError (or None) when nothing was launched."""
    path = _path(plan_name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not required:
            return None
        raise CloudError(
            f"{path}: plan {plan_name} was never launched from here; run `shakyo cloud launch` "
            "first, or pass --id INSTANCE_ID"
        ) from None
    except ValueError:
        raise CloudError(f"{path}: not valid JSON; delete it if no instance is running") from None


def save_state(plan_name: str, state: dict[str, Any]) -> Path:
    path = _path(plan_name)
    atomic_write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    return path
