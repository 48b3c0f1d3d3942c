"""`shakyo cloud plan|launch|status|logs|fetch|destroy|kernel PLAN.toml`.

shakyo cloud plan    PLAN   validate, show the keys found (never their values), the cheapest
                            offers and what the run costs at most; --onstart prints the script
shakyo cloud launch  PLAN   rent the cheapest offer that fits; the instance trains, publishes,
                            destroys itself. --watch stays and watches (and fetches at the end);
                            --resume continues from the checkpoint a failed run published
shakyo cloud status  PLAN   the instance's state, price, cost so far, deadline, bootstrap step;
                            --watch polls and destroys the instance past its deadline
shakyo cloud logs    PLAN   the instance's log, redacted
shakyo cloud fetch   PLAN   download the published model (and logs) into out/cloud/PLAN/
shakyo cloud destroy PLAN   destroy the instance now (destroy, never stop: a stopped instance bills)
shakyo cloud kernel  PLAN   write the Kaggle inference notebook; --push, --wait for its output
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

from reference.cli import positive_float
from reference.cloud import kaggle as kg
from reference.cloud.kernel import write_kernel
from reference.cloud.onstart import instance_env, plan_variables, render_onstart, resolve_ref
from reference.cloud.plan import Plan, PlanError, load_plan
from reference.cloud.secrets import Keys, find_keys
from reference.cloud.state import load_state, save_state
from reference.cloud.vast import GONE_STATES, Vast
from reference.errors import CloudError

__all__ = ["add_arguments", "run", "watch"]

_ACTIONS = {
    "plan": "validate a plan; show keys, offers and the cost",
    "launch": "rent a GPU; it trains, publishes to Kaggle and destroys itself",
    "status": "state, cost and deadline of the instance (--watch: destroy past the deadline)",
    "logs": "the instance's log, redacted",
    "fetch": "download the published model and logs",
    "destroy": "destroy the instance now",
    "kernel": "write (and --push) the Kaggle inference notebook",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_ in _ACTIONS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("plan", help="plan file, e.g. configs/cloud/learner_12ep.toml")
        if name == "plan":
            p.add_argument("--onstart", action="store_true", help="print the on-start script too")
            p.add_argument("--offers", type=int, default=5, help="how many offers to list")
        if name == "launch":
            p.add_argument("--offer", type=int, help="rent this offer id instead of the cheapest")
            p.add_argument("--yes", action="store_true", help="do not ask before renting")
            p.add_argument("--watch", action="store_true", help="watch until the end, then fetch")
            p.add_argument("--resume", action="store_true", help="continue from <dataset>-logs")
            p.add_argument("--force", action="store_true", help="launch even if one is running")
        if name in ("status", "launch"):
            p.add_argument(
                "--interval", type=positive_float, default=60, help="seconds between polls"
            )
        if name == "status":
            p.add_argument("--watch", action="store_true", help="poll; destroy past the deadline")
        if name in ("status", "logs", "destroy"):
            p.add_argument("--id", type=int, help="instance id (default: the one launched)")
        if name == "logs":
            p.add_argument("--tail", type=int, help="last N lines")
            p.add_argument("--out", type=Path, help="write to this file instead of stdout")
        if name in ("fetch", "kernel", "launch"):
            p.add_argument("--out", type=Path, help="folder (default out/cloud/PLAN)")
        if name == "kernel":
            p.add_argument("--push", action="store_true", help="kaggle kernels push")
            p.add_argument("--wait", action="store_true", help="poll until done, fetch the output")
            p.add_argument(
                "--timeout", type=positive_float, default=3 * 3600, help="seconds to wait"
            )
            p.add_argument("--poll", type=positive_float, default=30, help="seconds between polls")


def _say(text: str) -> None:
    print(text, flush=True)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _out(args, plan: Plan) -> Path:
    return args.out if getattr(args, "out", None) else Path("out") / "cloud" / plan.name


def _vast(keys: Keys) -> Vast:
    return Vast(keys.require_vast().value)


def _check_owner(plan: Plan, keys: Keys) -> None:
    user, _ = keys.require_kaggle()
    if plan.owner != user:
        raise PlanError(
            f"{plan.path}: [publish] dataset {plan['publish']['dataset']} belongs to {plan.owner}, "
            f'but your Kaggle key is {user}\'s; write dataset = "{user}/..."'
        )


def _offer_line(o: dict) -> str:
    return (
        f"  offer {o.get('id')}: {o.get('num_gpus', '?')}x {o.get('gpu_name', '?')} "
        f"{o.get('gpu_ram', 0) / 1024:.0f} GB, ${o.get('dph_total', 0):.3f}/h, "
        f"reliability {o.get('reliability', o.get('reliability2', 0)):.3f}, "
        f"down {o.get('inet_down', 0):.0f} Mbit/s, {o.get('geolocation', '?')}"
    )


def cmd_plan(args, plan: Plan, keys: Keys) -> int:
    t = plan["train"]
    _say(f"plan {plan.name}: {plan.path}")
    for cfg in plan.train_configs:
        _say(
            f"  run {cfg['FNAME']}: {cfg['MODEL']} {cfg['ARCH']}, {cfg['EPOCHS']} epochs, BS {cfg['BS']}, "
            f"LR_MAX {cfg['LR_MAX']:g}, PRECISION {cfg['PRECISION'] or 'auto'}, TRACKER {cfg['TRACKER']}"
        )
    src = plan["data"]
    data = (
        src["dataset"]
        if src["source"] == "dataset"
        else f"competition {src['competition']} (+ prepare)"
    )
    _say(f"  data: {data}; weights: {t['weights'] or 'none'}")
    _say(f"  publish: {plan['publish']['dataset']} (logs: {plan.logs_dataset})")
    for line in keys.describe():
        _say("  " + line)
    if keys.kaggle_username and plan.owner != keys.kaggle_username:
        _say(
            f"  note: [publish] dataset owner {plan.owner} is not your Kaggle user {keys.kaggle_username}; launch will refuse"
        )
    if keys.wandb is None and any(c["TRACKER"] == "wandb" for c in plan.train_configs):
        _say(
            "  note: TRACKER wandb but no wandb key (WANDB_API_KEY or `wandb login`); launch will refuse"
        )
    hours = plan["instance"]["max_hours"]
    if keys.vast is None:
        _say(
            f"  offers: not searched (no Vast key); at most ${plan.max_cost():.2f} ({hours:g} h x max_dph)"
        )
    else:
        offers = _vast(keys).search_offers(plan.offer_query(), limit=max(args.offers, 1))
        _say(f"  offers for `{plan.offer_query()}`: {len(offers)}")
        for o in offers[: args.offers]:
            _say(_offer_line(o))
        if offers:
            dph = offers[0]["dph_total"]
            _say(
                f"  cheapest: ${dph:.3f}/h -> at most ${plan.max_cost(dph):.2f} for {hours:g} h (the deadline)"
            )
    if args.onstart:
        _say(
            "\n"
            + render_onstart(
                plan_variables(plan, plan["project"]["ref"], int(time.time() + hours * 3600))
            )
        )
    return 0


def _working_tree_dirty(root: Path) -> bool:
    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return False
    return bool(out.strip())


def cmd_launch(args, plan: Plan, keys: Keys) -> int:
    keys.require_vast()
    _check_owner(plan, keys)
    vast = _vast(keys)
    old = load_state(plan.name, required=False)
    if old and not old.get("ended_at") and not args.force:
        row = vast.show_instance(old["instance_id"])
        if row is None or (row.get("actual_status") or row.get("cur_state")) in GONE_STATES:
            old.update(ended_at=time.time(), end="gone (destroyed)")
            save_state(plan.name, old)
    if old and not old.get("ended_at") and not args.force:
        raise CloudError(
            f"plan {plan.name} already has instance {old['instance_id']} (launched {_when(old['launched_at'])}); "
            f"`shakyo cloud status {args.plan}`, `destroy`, or --force to rent another"
        )
    root = Path.cwd()
    commit = resolve_ref(root, plan["project"]["ref"])
    if _working_tree_dirty(root):
        print(
            f"note: uncommitted changes are not on the instance; it installs {commit[:12]}",
            file=sys.stderr,
        )
    send_wandb = any(c["TRACKER"] == "wandb" for c in plan.train_configs)
    env = instance_env(keys, send_wandb)
    offers = vast.search_offers(plan.offer_query(), limit=20)
    if args.offer is not None:
        offers = [o for o in offers if o.get("id") == args.offer]
        if not offers:
            raise CloudError(
                f"offer {args.offer} does not match the plan's query (or is gone); see `shakyo cloud plan`"
            )
    if not offers:
        raise CloudError(
            f"no offer matches `{plan.offer_query()}`; raise [offer] max_dph or lower the requirements"
        )
    offer = offers[0]
    hours = plan["instance"]["max_hours"]
    _say(_offer_line(offer))
    _say(
        f"at most {hours:g} h -> at most ${plan.max_cost(offer['dph_total']):.2f}; commit {commit[:12]}"
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise CloudError("not a terminal: pass --yes to rent without a question")
        if input("rent it? [y/N] ").strip().lower() != "y":
            _say("not launched")
            return 1
    launched = time.time()
    deadline = int(launched + hours * 3600)
    resume_from = plan.logs_dataset if args.resume else ""
    onstart = render_onstart(plan_variables(plan, commit, deadline, resume_from))
    instance_id = vast.create_instance(
        offer["id"], image=plan["instance"]["image"], disk_gb=plan["instance"]["disk_gb"],
        env=env, onstart=onstart, label=f"shakyo-{plan.name}",
    )  # fmt: skip
    state = {
        "plan": str(plan.path), "instance_id": instance_id, "offer_id": offer["id"],
        "gpu": f"{offer.get('num_gpus', 1)}x {offer.get('gpu_name', '?')}", "dph": offer["dph_total"],
        "launched_at": launched, "deadline": deadline, "commit": commit, "resume_from": resume_from,
        "ended_at": None, "end": None,
    }  # fmt: skip
    path = save_state(plan.name, state)
    _say(f"launched instance {instance_id}; deadline {_when(deadline)}; state in {path}")
    _say(f"next: shakyo cloud status {args.plan} --watch   (destroys it past the deadline)")
    if args.watch:
        watch(plan, state, vast, keys, args.interval)
        return cmd_fetch(args, plan, keys)
    return 0


def _row_line(row: dict, state: dict, now: float) -> str:
    up_h = (now - state["launched_at"]) / 3600
    dph = row.get("dph_total") or state["dph"]
    left = (state["deadline"] - now) / 3600
    status = row.get("actual_status") or row.get("cur_state") or "?"
    msg = (row.get("status_msg") or "").strip().splitlines()[:1]
    return (
        f"instance {state['instance_id']} {status}: {state['gpu']}, ${dph:.3f}/h, up {up_h:.2f} h "
        f"= ${up_h * dph:.2f}; deadline {_when(state['deadline'])} "
        f"({'passed' if left < 0 else f'in {left:.2f} h'})" + (f"; {msg[0][:80]}" if msg else "")
    )


def _last_step(vast: Vast, keys: Keys, instance_id: int) -> str | None:
    try:
        text = keys.redact(vast.logs(instance_id, tail=200))
    except CloudError:
        return None
    steps = re.findall(r"shakyo-bootstrap \[([a-z]+)\] (.*)", text)
    return f"bootstrap [{steps[-1][0]}] {steps[-1][1][:100]}" if steps else None


def watch(
    plan: Plan, state: dict, vast: Vast, keys: Keys, interval: float, once: bool = False
) -> int:
    """Poll the instance; destroy it once past the deadline; return when Vast no longer has it."""
    destroyed_by_us = False
    while True:
        now = time.time()
        row = vast.show_instance(state["instance_id"])
        status = (row or {}).get("actual_status") or (row or {}).get("cur_state")
        if row is None or status in GONE_STATES:
            if not state.get("ended_at"):
                state["ended_at"] = now
                state["end"] = (
                    "destroyed by the watchdog (deadline)"
                    if destroyed_by_us
                    else "gone (destroyed)"
                )
                save_state(plan.name, state)
            _say(
                f"instance {state['instance_id']} is gone ({state['end']}); nothing bills any more"
            )
            return 0
        _say(_row_line(row, state, now))
        step = _last_step(vast, keys, state["instance_id"])
        if step:
            _say("  " + step)
        if now >= state["deadline"] and not destroyed_by_us:
            _say(f"deadline passed: destroying instance {state['instance_id']}")
            vast.destroy_instance(state["instance_id"])
            destroyed_by_us = True
            continue
        if once:
            return 0
        time.sleep(interval)


def _state_for(args, plan: Plan) -> dict:
    state = load_state(plan.name, required=args.id is None) or {}
    if args.id is not None and state.get("instance_id") != args.id:
        now = time.time()
        state = {"instance_id": args.id, "gpu": "?", "dph": 0.0, "launched_at": now,
                 "deadline": now + plan["instance"]["max_hours"] * 3600, "ended_at": None}  # fmt: skip
    return state


def cmd_status(args, plan: Plan, keys: Keys) -> int:
    state = _state_for(args, plan)
    return watch(plan, state, _vast(keys), keys, args.interval, once=not args.watch)


def cmd_logs(args, plan: Plan, keys: Keys) -> int:
    state = _state_for(args, plan)
    text = keys.redact(_vast(keys).logs(state["instance_id"], tail=args.tail))
    if args.out:
        from reference.utils import atomic_write_text

        atomic_write_text(args.out, text)
        _say(f"{len(text.splitlines())} lines -> {args.out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_destroy(args, plan: Plan, keys: Keys) -> int:
    state = _state_for(args, plan)
    _vast(keys).destroy_instance(state["instance_id"])
    if "plan" in state:
        state.update(ended_at=time.time(), end="destroyed by `shakyo cloud destroy`")
        save_state(plan.name, state)
    _say(f"destroyed instance {state['instance_id']}")
    return 0


def cmd_fetch(args, plan: Plan, keys: Keys) -> int:
    import json

    out = _out(args, plan)
    model = out / "model"
    files = kg.download_dataset(keys, plan["publish"]["dataset"], model)
    _say(f"{plan['publish']['dataset']}: {len(files)} files -> {model}")
    for cfg in plan.train_configs:
        th = model / cfg["FNAME"] / "threshold.json"
        if th.is_file():
            t = json.loads(th.read_text())
            _say(
                f"  {cfg['FNAME']}: f_th {t.get('dice', float('nan')):.4f} at threshold {t.get('threshold')}"
            )
    if kg.dataset_exists(keys, plan.logs_dataset):
        logs = out / "logs"
        got = kg.download_dataset(keys, plan.logs_dataset, logs)
        for rel in got:  # redacted on the instance already; again here, with this machine's keys
            p = logs / rel
            if p.suffix in (".log", ".csv", ".json", ".txt"):
                p.write_bytes(keys.redact_bytes(p.read_bytes()))
        _say(f"{plan.logs_dataset}: {len(got)} files -> {logs}")
    return 0


def cmd_kernel(args, plan: Plan, keys: Keys) -> int:
    folder = _out(args, plan) / "kernel"
    for p in write_kernel(plan, folder):
        _say(f"wrote {p}")
    if not args.push:
        _say(f"push it: shakyo cloud kernel {args.plan} --push --wait")
        return 0
    _check_owner(plan, keys)
    _say(kg.push_kernel(keys, folder))
    if not args.wait:
        return 0
    ref, start = plan.kernel_ref, time.time()
    while True:
        status = kg.kernel_status(keys, ref)
        _say(f"{ref}: {status}")
        if status in ("complete", "error", "cancel_acknowledged", "cancel_requested"):
            break
        if time.time() - start > args.timeout:
            raise CloudError(
                f"{ref} still {status} after {args.timeout:.0f} s; run again with --wait later"
            )
        time.sleep(args.poll)
    dest = _out(args, plan) / "kernel-output"
    files = kg.kernel_output(keys, ref, dest)
    _say(f"output: {', '.join(str(f) for f in files)} -> {dest}")
    if status != "complete":
        raise CloudError(f"{ref} ended with {status}; its log is in {dest}")
    _say(f"submit {dest / 'submission.csv'} from the notebook's page on Kaggle (Output > Submit)")
    return 0


_RUN = {"plan": cmd_plan, "launch": cmd_launch, "status": cmd_status, "logs": cmd_logs,
        "fetch": cmd_fetch, "destroy": cmd_destroy, "kernel": cmd_kernel}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    keys = find_keys()
    try:
        return _RUN[args.action](args, plan, keys)
    except CloudError as e:
        # One more pass of the redaction over what reaches the terminal.
        raise CloudError(keys.redact(str(e))) from None
