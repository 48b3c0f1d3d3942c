"""The few Vast.ai calls `shakyo cloud` makes, through the official `vastai` SDK.

search offers -> create instance (image, disk, env, on-start) -> show instance ->
logs -> destroy. The SDK reads nothing from a command line: the key is passed in
from :mod:`reference.cloud.secrets`; ``VAST_URL`` (vastai's own variable) points it
at another server, which is how the tests use a loopback fake.

Vast bills a *stopped* instance for its disk; only ``destroy`` ends billing, so
this module has no stop.
"""

from __future__ import annotations

import os
from typing import Any

from reference.errors import CloudError

__all__ = ["Vast", "GONE_STATES"]

# Instance states after which nothing bills any more (or the instance is not listed).
GONE_STATES = {"destroyed", "deleted", "gone"}


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]


class Vast:
    """A thin adapter over ``vastai.VastAI``; every failure becomes one CloudError line."""

    def __init__(self, api_key: str, server_url: str | None = None) -> None:
        try:
            from vastai import VastAI
        except ImportError:
            raise CloudError(
                "the vastai package is missing; install the cloud extra: pip install -e '.[cloud]'"
            ) from None
        url = server_url or os.environ.get("VAST_URL") or None
        self.sdk = VastAI(api_key=api_key, server_url=url, raw=True, quiet=True)
        self._redact = lambda s: s.replace(api_key, "[redacted VAST_API_KEY]")

    def _fail(self, what: str, e: Exception) -> CloudError:
        import requests

        if isinstance(e, requests.HTTPError):
            code = e.response.status_code if e.response is not None else "?"
            hint = (
                "; check the key (VAST_API_KEY) and its permissions" if code in (401, 403) else ""
            )
            return CloudError(f"vast.ai {what}: HTTP {code}{hint}")
        return CloudError(f"vast.ai {what}: {self._redact(_short(e))}; check the network")

    def _call(self, what: str, fn, *args, **kwargs) -> Any:
        import requests

        try:
            return fn(*args, **kwargs)
        except requests.RequestException as e:
            raise self._fail(what, e) from None

    def search_offers(self, query: str, limit: int = 10) -> list[dict]:
        """Offers matching `query` (vastai query syntax), cheapest first."""
        offers = self._call(
            "search offers", self.sdk.search_offers, query=query, order="dph_total", limit=limit
        )
        return sorted(offers or [], key=lambda o: o.get("dph_total", float("inf")))

    def create_instance(
        self,
        offer_id: int,
        *,
        image: str,
        disk_gb: float,
        env: dict[str, str],
        onstart: str,
        label: str,
    ) -> int:
        """Rent `offer_id`; returns the new instance id. `env` reaches the container's environment."""
        rj = self._call(
            "create instance",
            self.sdk.create_instance,
            id=offer_id,
            image=image,
            disk=disk_gb,
            env=env,
            onstart_cmd=onstart,
            label=label,
            ssh=True,  # the ssh launch mode runs the on-start script and lets you look in
            cancel_unavail=True,
        )
        if not isinstance(rj, dict) or not rj.get("success") or "new_contract" not in rj:
            msg = rj.get("msg") or rj.get("error") if isinstance(rj, dict) else rj
            raise CloudError(
                f"vast.ai create instance on offer {offer_id} failed: {msg}; try another offer"
            )
        return int(rj["new_contract"])

    def show_instance(self, instance_id: int) -> dict | None:
        """The instance's record, or None when Vast no longer knows it (destroyed)."""
        import requests

        try:
            row = self.sdk.show_instance(id=instance_id)
        except requests.HTTPError as e:
            if e.response is not None and e.response.status_code == 404:
                return None
            raise self._fail("show instance", e) from None
        except requests.RequestException as e:
            raise self._fail("show instance", e) from None
        if not row:
            return None
        # The record carries the instance's environment (our keys): drop it here, once.
        return {k: v for k, v in row.items() if k not in ("extra_env", "env", "onstart")}

    def logs(self, instance_id: int, tail: int | None = None) -> str:
        """The container's log (stdout/stderr of the on-start script)."""
        out = self._call(
            "logs", self.sdk.logs, instance_id=instance_id, tail=str(tail) if tail else None
        )
        return out if isinstance(out, str) else str(out.get("msg", out))

    def destroy_instance(self, instance_id: int) -> None:
        """Destroy (not stop: a stopped instance still bills its disk)."""
        rj = self._call("destroy instance", self.sdk.destroy_instance, id=instance_id)
        if isinstance(rj, dict) and rj.get("success") is False:
            raise CloudError(f"vast.ai destroy instance {instance_id}: {rj.get('msg', rj)}")
