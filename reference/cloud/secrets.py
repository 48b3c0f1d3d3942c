"""The keys `shakyo cloud` needs, found on this machine, never printed, never written.

| key | looked up in (first found wins) | used for |
|---|---|---|
| Kaggle | ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, then ``$KAGGLE_CONFIG_DIR/kaggle.json``, ``~/.kaggle/kaggle.json``, ``~/.config/kaggle/kaggle.json`` | the instance downloads data and publishes the model; `fetch`, `kernel` here |
| Vast | ``VAST_API_KEY``, then ``$XDG_CONFIG_HOME/vastai/vast_api_key``, ``~/.config/vastai/vast_api_key`` | renting, status, logs, destroy: **here only** |
| wandb | ``WANDB_API_KEY``, then ``~/.netrc`` (machine api.wandb.ai) | `TRACKER wandb` on the instance |

The Vast key never travels: the instance destroys itself with the key Vast gives
every container for itself (``CONTAINER_API_KEY``). The Kaggle and wandb keys
reach the instance only as its environment (the create request's ``env``), which
Vast keeps with the instance; they are never on a command line, in the on-start
script, in a file of the repository, or in any output: :meth:`Keys.redact` runs
over every log this package writes or fetches.
"""

from __future__ import annotations

import json
import netrc
import os
from dataclasses import dataclass
from pathlib import Path

from reference.cloud.redact import redact, redact_bytes
from reference.errors import CloudError

__all__ = ["Secret", "Keys", "find_keys", "kaggle_env"]


@dataclass(frozen=True)
class Secret:
    """A key's value and where it came from (the source is safe to print; the value is not)."""

    name: str  # the environment variable it travels as
    value: str
    source: str

    def __repr__(self) -> str:  # a stray print or traceback must not show the value
        return f"Secret({self.name}, from {self.source})"

    __str__ = __repr__


@dataclass(frozen=True)
class Keys:
    """The keys found here. Any of them may be None (the command that needs it says so)."""

    kaggle_username: str | None
    kaggle: Secret | None
    vast: Secret | None
    wandb: Secret | None

    def secrets(self) -> dict[str, str]:
        """{environment name: value} of every key found (for redaction)."""
        return {s.name: s.value for s in (self.kaggle, self.vast, self.wandb) if s is not None}

    def redact(self, text: str) -> str:
        """`text` without any form of any key (see reference.cloud.redact)."""
        return redact(text, self.secrets(), self.kaggle_username)

    def redact_bytes(self, data: bytes) -> bytes:
        return redact_bytes(data, self.secrets(), self.kaggle_username)

    def require_kaggle(self) -> tuple[str, Secret]:
        if self.kaggle is None or not self.kaggle_username:
            raise CloudError(
                "no Kaggle key: put kaggle.json (Kaggle > Settings > API > Create New Token) in "
                "~/.kaggle/ (chmod 600), or set KAGGLE_USERNAME and KAGGLE_KEY"
            )
        return self.kaggle_username, self.kaggle

    def require_vast(self) -> Secret:
        if self.vast is None:
            raise CloudError(
                "no Vast key: set VAST_API_KEY, or save a (restricted) key with "
                "`vastai set api-key` to ~/.config/vastai/vast_api_key (see docs/cloud)"
            )
        return self.vast

    def describe(self) -> list[str]:
        """One line per key: found where, or missing. Never the value."""
        lines = []
        if self.kaggle is not None:
            lines.append(f"Kaggle key: user {self.kaggle_username}, from {self.kaggle.source}")
        else:
            lines.append(
                "Kaggle key: not found (KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json)"
            )
        lines.append(
            f"Vast key: from {self.vast.source} (stays on this machine)"
            if self.vast
            else "Vast key: not found (VAST_API_KEY or ~/.config/vastai/vast_api_key)"
        )
        lines.append(
            f"wandb key: from {self.wandb.source}" if self.wandb else "wandb key: not found"
        )
        return lines


def _home(env: dict[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _kaggle(env: dict[str, str]) -> tuple[str | None, Secret | None]:
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return env["KAGGLE_USERNAME"], Secret("KAGGLE_KEY", env["KAGGLE_KEY"], "$KAGGLE_KEY")
    home = _home(env)
    dirs = [env.get("KAGGLE_CONFIG_DIR"), home / ".kaggle", home / ".config" / "kaggle"]
    for d in dirs:
        if not d:
            continue
        path = Path(d) / "kaggle.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            user, key = data["username"], data["key"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CloudError(
                f'{path}: not a Kaggle key file (want {{"username": ..., "key": ...}}); '
                "download a new token from Kaggle > Settings > API"
            ) from None
        return str(user), Secret("KAGGLE_KEY", str(key), str(path))
    return None, None


def _vast(env: dict[str, str]) -> Secret | None:
    if env.get("VAST_API_KEY"):
        return Secret("VAST_API_KEY", env["VAST_API_KEY"], "$VAST_API_KEY")
    home = _home(env)
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    for path in (config / "vastai" / "vast_api_key", home / ".vast_api_key"):
        if path.is_file():
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return Secret("VAST_API_KEY", value, str(path))
    return None


def _wandb(env: dict[str, str]) -> Secret | None:
    if env.get("WANDB_API_KEY"):
        return Secret("WANDB_API_KEY", env["WANDB_API_KEY"], "$WANDB_API_KEY")
    path = Path(env.get("NETRC") or _home(env) / ".netrc")
    if path.is_file():
        try:
            auth = netrc.netrc(str(path)).authenticators("api.wandb.ai")
        except (OSError, netrc.NetrcParseError):
            auth = None
        if auth and auth[2]:
            return Secret("WANDB_API_KEY", auth[2], f"{path} (api.wandb.ai)")
    return None


def find_keys(env: dict[str, str] | None = None) -> Keys:
    """Look up the Kaggle, Vast and wandb keys in `env` (default os.environ) and the usual files."""
    env = dict(os.environ if env is None else env)
    user, kaggle = _kaggle(env)
    return Keys(user, kaggle, _vast(env), _wandb(env))


def kaggle_env(keys: Keys, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a `kaggle` CLI subprocess: `base` plus the Kaggle key as variables."""
    user, key = keys.require_kaggle()
    env = dict(os.environ if base is None else base)
    env.update(KAGGLE_USERNAME=user, KAGGLE_KEY=key.value)
    return env
