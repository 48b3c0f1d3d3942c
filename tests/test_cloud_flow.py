"""`shakyo cloud` end to end, offline: launch -> the instance's bootstrap -> publish -> destroy.

Everything talks to loopback fakes (tests/cloud_fakes.py) through the official
clients: the vastai SDK/CLI by VAST_URL, the kaggle CLI by KAGGLE_API_ENVIRONMENT
and HTTP_PROXY. The "instance" is a temporary folder in which the on-start script
that `shakyo cloud launch` sent to the fake Vast runs, exactly as sent, with the
environment the fake recorded, the CONTAINER_ID / CONTAINER_API_KEY a Vast
container has, and a fake `nvidia-smi` on PATH. The project is already installed
there (its venv is this one: what a restarted instance finds); the clone of the
pinned commit is real.

The keys are fake, and the leak test greps every file and output of the whole
flow, and every request the fakes recorded, for every form of them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import zipfile
from pathlib import Path

import pytest
from cloud_fakes import FakeKaggle, FakeVast, zip_files

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
USER = "learner"
COMPETITION = "google-research-identify-contrails-reduce-global-warming"
OFFERS = [
    {"id": 501, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564, "dph_total": 0.412,
     "reliability": 0.996, "inet_down": 850.0, "disk_space": 400.0, "rentable": True, "geolocation": "JP"},
    {"id": 502, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564, "dph_total": 0.55,
     "reliability": 0.99, "inet_down": 500.0, "disk_space": 400.0, "rentable": True, "geolocation": "US"},
    {"id": 503, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564, "dph_total": 0.95,
     "reliability": 0.999, "inet_down": 900.0, "disk_space": 400.0, "rentable": True, "geolocation": "DE"},
]  # fmt: skip
NVIDIA_SMI = "#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 24564 MiB, 550.54.14'\n"

PLAN = """
[offer]
gpu_name = "RTX_4090"
max_dph = 0.6
min_reliability = 0.98
[instance]
image = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"
disk_gb = 60
max_hours = {hours}
publish_margin_min = {margin}
[project]
repo = "{repo}"
[train]
config = "configs/demo.json"
overrides = {overrides}
seeds = [2023]
[data]
{data}
[publish]
dataset = "{user}/{slug}"
title = "shakyo e2e model"
"""


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout  # fmt: skip


def _snapshot_repo(dest: Path) -> str:
    """A git repository holding this working tree (tracked + untracked, not ignored): what a
    user's fork would hold after `git commit`; returns its commit."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                           check=True, capture_output=True, text=True).stdout.split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-qm", "snapshot")
    return _git(dest, "rev-parse", "HEAD").strip()


def _tiles(tmp: Path) -> tuple[Path, Path]:
    """Tiny synthetic Kaggle records (32², 8 train / 4 validation / 2 test) and their tiles."""
    from reference.data.prepare import prepare
    from reference.data.synth import synthesize

    raw = tmp / "raw"
    synthesize(raw, 8, 4, 2, seed=0, size=32, workers=1, progress=False)
    prepare(raw, raw, workers=1, progress=False)
    return raw, raw


def _folder_files(folder: Path, prefix: str = "") -> dict[str, bytes]:
    return {
        prefix + str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class World:
    """The fakes, the keys, a fake home, the repository snapshot, every output produced."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keys = {
            "KAGGLE_KEY": "kgl" + secrets.token_hex(16),
            "VAST_API_KEY": "vst" + secrets.token_hex(20),
            "WANDB_API_KEY": "wdb" + secrets.token_hex(20),
        }
        self.vast = FakeVast(self.keys["VAST_API_KEY"], OFFERS)
        self.kaggle = FakeKaggle(USER, self.keys["KAGGLE_KEY"])
        self.home = tmp / "home"
        (self.home / ".kaggle").mkdir(parents=True)
        self.key_files = [
            self.home / ".kaggle" / "kaggle.json",
            self.home / ".config" / "vastai" / "vast_api_key",
        ]
        self.key_files[0].write_text(json.dumps({"username": USER, "key": self.keys["KAGGLE_KEY"]}))
        self.key_files[0].chmod(0o600)
        self.key_files[1].parent.mkdir(parents=True)
        self.key_files[1].write_text(self.keys["VAST_API_KEY"] + "\n")
        (tmp / "tmp").mkdir()
        self.repo = tmp / "repo"
        self.repo.mkdir()
        self.commit = _snapshot_repo(self.repo)
        self.outputs: list[str] = []  # stdout+stderr of every command of the flow

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("KAGGLE_", "VAST_", "WANDB_", "CONTAINER_")) and "PROXY" not in k.upper()}  # fmt: skip
        base.update(
            HOME=str(self.home), TMPDIR=str(self.tmp / "tmp"), MPLBACKEND="Agg",
            VAST_URL=self.vast.url, KAGGLE_API_ENVIRONMENT="LOCALHOST",
            HTTP_PROXY=self.kaggle.url, http_proxy=self.kaggle.url, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
            WANDB_API_KEY=self.keys["WANDB_API_KEY"], PATH=f"{VENV_BIN}:{os.environ['PATH']}",
            OMP_NUM_THREADS="1",  # tiny tensors: one thread is much faster on a shared 2-core box
        )  # fmt: skip
        base.update(extra)
        return base

    def write_plan(
        self, name: str, *, hours=2, margin=1, overrides=None, data=None, slug="shakyo-e2e-model"
    ) -> Path:
        ov = overrides or {"EPOCHS": 1, "TRACKER": "wandb"}
        ov_toml = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in ov.items()) + " }"
        text = PLAN.format(hours=hours, margin=margin, repo=self.repo, overrides=ov_toml, user=USER,
                           slug=slug, data=data or self.data_toml)  # fmt: skip
        path = self.repo / "configs" / "cloud" / f"{name}.toml"
        path.write_text(text)
        return path

    def shakyo(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(VENV_BIN / "shakyo"), *args], cwd=self.repo, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        self.outputs.append(proc.stdout + proc.stderr)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def run_instance(
        self, instance_id: int, timeout: float = 300, box: Path | None = None
    ) -> subprocess.CompletedProcess:
        """Run the on-start script the fake Vast received, in a fresh 'container' folder `box`
        (default instance-ID; every real instance has the same /workspace/shakyo)."""
        inst = self.vast.instances[instance_id]
        box = box or self.tmp / f"instance-{instance_id}"
        work, bin_ = box / "work", box / "bin"
        (work / "state").mkdir(parents=True)
        bin_.mkdir()
        (box / "home").mkdir()
        (bin_ / "nvidia-smi").write_text(NVIDIA_SMI)
        (bin_ / "nvidia-smi").chmod(0o755)
        # What a restarted instance finds: the project installed (this venv) for this commit.
        (work / "venv").symlink_to(VENV_BIN.parent)
        for marker in ("tools", f"install-{self.commit}"):
            (work / "state" / marker).touch()
        env = self.env(
            HOME=str(box / "home"), SHAKYO_WORK=str(work), PATH=f"{bin_}:/usr/bin:/bin",
            CONTAINER_ID=str(instance_id), CONTAINER_API_KEY=inst["container_api_key"],
            SHAKYO_RETRY_WAIT="0", WANDB_MODE="offline", WANDB_SILENT="true",
        )  # fmt: skip
        del env["WANDB_API_KEY"]  # the instance gets it only from the create request's env
        env.update(inst["env"])
        (box / "onstart.sh").write_text(inst["onstart"])
        proc = subprocess.run(["bash", str(box / "onstart.sh")], cwd=box, env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        log = proc.stdout + proc.stderr
        self.outputs.append(log)
        # Vast shows the container's output as its log; a tool that dumps its environment would
        # put a key there: `shakyo cloud logs` must not show it.
        self.vast.logs[instance_id] = (
            log + f"\nenv dump: KAGGLE_KEY={inst['env'].get('KAGGLE_KEY')}\n"
        )
        return proc

    def last_instance(self) -> int:
        return max(self.vast.instances)

    def dataset_files(self, ref: str, version: int = -1) -> dict[str, bytes]:
        return self.kaggle.datasets[ref].versions[version]["files"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cloud")
    w = World(tmp)
    raw, tiles = _tiles(tmp)
    tile_files = {
        "train_adj2.zip": zip_files(_folder_files(tiles / "train_adj2")),
        "val_adj2.zip": zip_files(_folder_files(tiles / "val_adj2")),
    }
    w.kaggle.add_dataset(f"{USER}/icrgw-tiles", tile_files)
    sha = hashlib.sha256(zip_files(tile_files)).hexdigest()
    w.data_toml = f'dataset = "{USER}/icrgw-tiles"\nsha256 = "{sha}"'
    raw_files = {}
    for split in ("train", "validation"):
        raw_files.update(_folder_files(raw / split, f"{split}/"))
    w.kaggle.competitions[COMPETITION] = zip_files(raw_files)
    w.raw = raw
    yield w
    w.vast.close()
    w.kaggle.close()


@pytest.fixture(scope="module")
def happy(world):
    """The learner's flow on demo data: plan, launch, the instance's run, status, logs, fetch, kernel."""
    w = world
    plan = w.write_plan("e2e")
    rel = str(plan.relative_to(w.repo))
    plan_out = w.shakyo("cloud", "plan", rel)
    # Transient errors on the way: a 503 on the first data download, the first dataset
    # creation, and the first destroy.
    w.kaggle.fail_next.update(DownloadDataset=1, CreateDataset=1)
    w.vast.fail_next.update(destroy=1)
    launch = w.shakyo("cloud", "launch", rel, "--yes")
    iid = w.last_instance()
    t0 = time.time()
    run = w.run_instance(iid)
    seconds = time.time() - t0
    status = w.shakyo("cloud", "status", rel)
    logs = w.shakyo("cloud", "logs", rel)
    fetch = w.shakyo("cloud", "fetch", rel)
    w.kaggle.kernel_outputs[f"{USER}/shakyo-e2e-model-infer"] = {
        "submission.csv": b"record_id,encoded_pixels\n1,-\n"
    }
    kernel = w.shakyo("cloud", "kernel", rel, "--push", "--wait", "--poll", "0.1")
    return {"plan": plan, "plan_out": plan_out, "rel": rel, "iid": iid, "launch": launch, "run": run, "seconds": seconds,
            "status": status, "logs": logs, "fetch": fetch, "kernel": kernel}  # fmt: skip


def test_launch_rents_the_cheapest_matching_offer_with_the_keys_only_in_the_environment(
    world, happy
):
    inst = world.vast.instances[happy["iid"]]
    assert inst["offer"]["id"] == 501  # 0.412 $/h: the cheapest under max_dph 0.6
    assert inst["image"] == "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime" and inst["disk"] == 60
    assert set(inst["env"]) == {"KAGGLE_USERNAME", "KAGGLE_KEY", "WANDB_API_KEY"}  # no Vast key
    assert inst["env"]["KAGGLE_KEY"] == world.keys["KAGGLE_KEY"]
    assert f"export SHAKYO_REF={world.commit}" in inst["onstart"]
    assert "launched instance" in happy["launch"].stdout
    out = happy["plan_out"].stdout
    assert (
        "offers for `gpu_name=RTX_4090" in out and "offer 501:" in out and "offer 503:" not in out
    )
    assert "cheapest: $0.412/h -> at most $0.82 for 2 h" in out  # 0.412 x 2 = 0.824
    assert f"Kaggle key: user {USER}, from " in out and "Vast key: from " in out


def test_the_instance_trains_publishes_the_model_and_destroys_itself(world, happy):
    run = happy["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    inst = world.vast.instances[happy["iid"]]
    assert inst["status"] == "destroyed" and inst["destroyed_by"] == "instance"
    files = world.dataset_files(f"{USER}/shakyo-e2e-model")
    assert sorted(files) == ["demo.zip", "shakyo-src.zip"]
    run_zip = zipfile.ZipFile(io.BytesIO(files["demo.zip"]))
    names = set(run_zip.namelist())
    assert {"model.pth", "config.json", "history.csv", "threshold.json"} <= names
    config = json.loads(run_zip.read("config.json"))
    assert config["EPOCHS"] == 1 and config["TRACKER"] == "wandb" and config["SEED"] == 2023
    history = run_zip.read("history.csv").decode().splitlines()
    assert history[0].startswith("epoch,train_loss,valid_loss,f_th") and len(history) == 2
    assert 0.1 <= json.loads(run_zip.read("threshold.json"))["threshold"] <= 0.89
    src = zipfile.ZipFile(io.BytesIO(files["shakyo-src.zip"]))
    assert (
        "reference/infer.py" in src.namelist() and "reference/cloud/bootstrap.sh" in src.namelist()
    )
    logs = world.dataset_files(f"{USER}/shakyo-e2e-model-logs")
    assert "bootstrap.log" in logs and "all steps done" in logs["bootstrap.log"].decode()
    assert world.kaggle.datasets[f"{USER}/shakyo-e2e-model"].private


def test_transient_http_errors_are_retried(world, happy):
    def statuses(reqs, key):
        return [
            r.status for r in reqs if key in r.path or (key == "DELETE" and r.method == "DELETE")
        ]

    downloads = statuses(world.kaggle.requests, "DownloadDataset")
    assert downloads[:2] == [503, 302], downloads
    creates = statuses(world.kaggle.requests, "CreateDataset")
    assert creates[0] == 503 and 200 in creates, creates
    destroys = [
        r.status
        for r in world.vast.requests
        if r.method == "DELETE" and f"/{happy['iid']}/" in r.path
    ]
    assert destroys == [503, 200], destroys


def test_status_logs_fetch_and_kernel_after_the_run(world, happy):
    assert "is gone" in happy["status"].stdout
    state = json.loads((world.repo / ".shakyo" / "cloud" / "e2e.json").read_text())
    assert (
        state["instance_id"] == happy["iid"]
        and state["ended_at"]
        and state["commit"] == world.commit
    )
    log = happy["logs"].stdout
    assert "shakyo-bootstrap [publish]" in log and "[redacted KAGGLE_KEY]" in log
    model = world.repo / "out" / "cloud" / "e2e" / "model" / "demo"
    assert (model / "model.pth").is_file() and (model / "threshold.json").is_file()
    assert "f_th" in happy["fetch"].stdout
    meta = json.loads(
        (world.repo / "out" / "cloud" / "e2e" / "kernel" / "kernel-metadata.json").read_text()
    )
    assert meta["id"] == f"{USER}/shakyo-e2e-model-infer" and meta["enable_gpu"] is True
    assert meta["enable_internet"] is False and meta["competition_sources"] == [COMPETITION]
    assert meta["dataset_sources"] == [f"{USER}/shakyo-e2e-model"]
    pushed = world.kaggle.kernels[f"{USER}/shakyo-e2e-model-infer"]["versions"][0]
    assert pushed["enableGpu"] is True and pushed["datasetDataSources"] == [
        f"{USER}/shakyo-e2e-model"
    ]
    out = world.repo / "out" / "cloud" / "e2e" / "kernel-output"
    assert (out / "submission.csv").is_file()
    assert "submit" in happy["kernel"].stdout


def test_the_generated_notebook_predicts_from_the_published_dataset(world, happy):
    """Run the notebook's code cells here, with /kaggle/input laid out as Kaggle mounts the
    published dataset (its files as uploaded) and the competition's test records."""
    tmp_path = world.tmp / "notebook"
    inp = tmp_path / "input"
    for name, data in world.dataset_files(f"{USER}/shakyo-e2e-model").items():
        (inp / "shakyo-e2e-model").mkdir(parents=True, exist_ok=True)
        (inp / "shakyo-e2e-model" / name).write_bytes(data)
    shutil.copytree(world.raw / "test", inp / COMPETITION / "test")
    nb = json.loads(
        (world.repo / "out" / "cloud" / "e2e" / "kernel" / "shakyo-infer.ipynb").read_text()
    )
    code = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    (tmp_path / "nb.py").write_text(code)
    working = tmp_path / "working"
    working.mkdir()
    env = dict(world.env(), SHAKYO_KAGGLE_INPUT=str(inp), SHAKYO_KAGGLE_WORKING=str(working))
    proc = subprocess.run([sys.executable, str(tmp_path / "nb.py")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    world.outputs.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = (working / "submission.csv").read_text().splitlines()
    assert rows[0] == "record_id,encoded_pixels" and len(rows) == 3  # 2 test records
    # The code ran from the published source, not from this checkout.
    assert f"code: {working / 'shakyo-src' / 'reference'}" in proc.stdout


def test_training_failure_publishes_the_logs_and_destroys_the_instance(world, happy):
    """Raw competition records (so `shakyo prepare` runs), then a training that cannot start."""
    plan = world.write_plan("e2e_crash", overrides={"EPOCHS": 1, "BS": 1000},
                            data=f'source = "competition"\ncompetition = "{COMPETITION}"', slug="shakyo-e2e-crash")  # fmt: skip
    world.shakyo("cloud", "launch", str(plan.relative_to(world.repo)), "--yes")
    iid = world.last_instance()
    run = world.run_instance(iid)
    assert run.returncode != 0
    assert "prepare:" in run.stdout + run.stderr  # the tiles were made on the instance
    inst = world.vast.instances[iid]
    assert inst["status"] == "destroyed" and inst["destroyed_by"] == "instance"
    assert f"{USER}/shakyo-e2e-crash" not in world.kaggle.datasets  # no model
    log = world.dataset_files(f"{USER}/shakyo-e2e-crash-logs")["bootstrap.log"].decode()
    assert "FAILED: train failed" in log and "fewer than BS 1000" in log


def test_deadline_on_the_instance_and_the_local_watchdog(world, happy):
    """max_hours 0.002 (7 s) with a 1 min margin: the instance has no time to train, publishes its
    logs and destroys itself; a second launch is left alone until the watchdog destroys it."""
    plan = world.write_plan("e2e_late", hours=0.002, slug="shakyo-e2e-late")
    rel = str(plan.relative_to(world.repo))
    world.shakyo("cloud", "launch", rel, "--yes")
    iid = world.last_instance()
    run = world.run_instance(iid)
    assert run.returncode != 0 and world.vast.instances[iid]["destroyed_by"] == "instance"
    log = world.dataset_files(f"{USER}/shakyo-e2e-late-logs")["bootstrap.log"].decode()
    assert "FAILED: deadline: no time left to train" in log
    # A second instance that never runs its on-start (a broken host): only the watchdog ends it.
    world.shakyo("cloud", "launch", rel, "--yes")  # allowed: Vast says the first one is gone
    iid2 = world.last_instance()
    assert iid2 != iid
    watch = world.shakyo("cloud", "status", rel, "--watch", "--interval", "0.5", timeout=120)
    assert "deadline passed: destroying" in watch.stdout and "is gone" in watch.stdout
    assert world.vast.instances[iid2]["destroyed_by"] == "user"


def test_launch_resume_continues_from_the_checkpoint_a_failed_run_published(world, happy):
    """What `finish` publishes after a deadline (run folder with checkpoint.pth) is what
    `launch --resume` downloads; the new instance (same work path, fresh disk) resumes it."""
    box = world.tmp / f"instance-{happy['iid']}"
    run_dir = box / "work" / "out" / "demo"
    names = (
        "checkpoint.pth",
        "model.pth",
        "config.json",
        "history.csv",
        "batches.csv",
        "summary.json",
    )
    world.kaggle.add_dataset(f"{USER}/shakyo-e2e-resume-logs",
                             {"demo.zip": zip_files({n: (run_dir / n).read_bytes() for n in names})})  # fmt: skip
    history = (run_dir / "history.csv").read_text()
    box.rename(box.with_name(box.name + "-old"))
    plan = world.write_plan(
        "e2e_resume", overrides={"EPOCHS": 1}, slug="shakyo-e2e-resume"
    )  # TRACKER is resume-free
    world.shakyo("cloud", "launch", str(plan.relative_to(world.repo)), "--yes", "--resume")
    iid = world.last_instance()
    assert (
        f"export SHAKYO_RESUME_FROM={USER}/shakyo-e2e-resume-logs"
        in world.vast.instances[iid]["onstart"]
    )
    run = world.run_instance(iid, box=box)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"checkpoints from {USER}/shakyo-e2e-resume-logs: 1" in run.stdout
    assert "epochs 1..0" in run.stderr + run.stdout  # nothing left to train: the run had finished
    published = zipfile.ZipFile(
        io.BytesIO(world.dataset_files(f"{USER}/shakyo-e2e-resume")["demo.zip"])
    )
    assert published.read("history.csv").decode() == history


def test_a_second_launch_while_one_runs_is_refused(world, happy):
    plan = world.write_plan("e2e_twice", slug="shakyo-e2e-twice")
    rel = str(plan.relative_to(world.repo))
    world.shakyo("cloud", "launch", rel, "--yes")
    again = world.shakyo("cloud", "launch", rel, "--yes", check=False)
    assert again.returncode == 2 and "already has instance" in again.stderr
    world.shakyo("cloud", "destroy", rel)
    assert world.vast.instances[world.last_instance()]["status"] == "destroyed"


# --- the leak test: last, over everything the tests above produced ----------------------------


def _forms(keys: dict[str, str]) -> dict[str, bytes]:
    forms = {}
    for name, value in keys.items():
        forms[f"{name} raw"] = value.encode()
        forms[f"{name} url-quoted"] = urllib.parse.quote(value, safe="").encode()
        forms[f"{name} base64"] = base64.b64encode(value.encode())
    forms["kaggle basic auth"] = base64.b64encode(f"{USER}:{keys['KAGGLE_KEY']}".encode())
    return forms


def _hits(data: bytes, forms: dict[str, bytes], where: str, out: list[str], depth: int = 0) -> None:
    """Every occurrence of a form in `data`; zip archives (datasets, uploads, torch files) are
    searched member by member, since deflate would hide a string."""
    for label, needle in forms.items():
        if needle in data:
            out.append(f"{where}: {label}")
    if depth < 3 and data[:2] == b"PK":
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
            for name in z.namelist():
                _hits(z.read(name), forms, f"{where}!{name}", out, depth + 1)
        except zipfile.BadZipFile:
            pass


def scan_for_keys(world: World) -> tuple[list[str], list[str]]:
    """(leaks, expected): expected are the places the keys must be (the user's own key files,
    the create request's env, the auth headers); leaks are all others."""
    forms = _forms(world.keys)
    leaks: list[str] = []
    expected: list[str] = []
    key_files = {p.resolve() for p in world.key_files}
    venv = VENV_BIN.parent.resolve()
    for p in sorted(world.tmp.rglob("*")):
        if p.is_symlink() or not p.is_file() or venv in p.resolve().parents:
            continue
        _hits(
            p.read_bytes(),
            forms,
            str(p.relative_to(world.tmp)),
            expected if p.resolve() in key_files else leaks,
        )
    for i, text in enumerate(world.outputs):
        _hits(text.encode(), forms, f"output of command {i}", leaks)
    for fake in (world.vast, world.kaggle):
        for r in fake.requests:
            where = f"{type(fake).__name__} {r.method} {r.path}"
            for k, v in r.headers.items():
                _hits(
                    v.encode(),
                    forms,
                    f"{where} header {k}",
                    expected if k.lower() == "authorization" else leaks,
                )
            _hits(r.path.encode(), forms, f"{where} path", leaks)
            body = r.body
            if type(fake) is FakeVast and r.method == "PUT" and "/asks/" in r.path:
                doc = json.loads(body)
                _hits(json.dumps(doc.pop("env")).encode(), forms, f"{where} env", expected)
                body = json.dumps(doc).encode()
            _hits(body, forms, f"{where} body", leaks)
    for ref, d in world.kaggle.datasets.items():
        for v in d.versions:
            for name, data in v["files"].items():
                _hits(data, forms, f"dataset {ref} {name}", leaks)
    # (world.vast.logs, the fake's log store, holds a key on purpose: `shakyo cloud logs` must
    # redact it, and that command's output is scanned above.)
    return leaks, expected


def test_no_key_in_any_file_log_or_request(world, happy):
    """The whole flow ran with fake keys; they are where they must be and nowhere else."""
    leaks, expected = scan_for_keys(world)
    assert leaks == [], "\n".join(leaks)
    # The scan can find them: in the key files, the instance env, the auth headers.
    labels = " | ".join(expected)
    assert "home/.kaggle/kaggle.json: KAGGLE_KEY raw" in labels
    assert "vast_api_key: VAST_API_KEY raw" in labels
    assert "env: KAGGLE_KEY raw" in labels and "env: WANDB_API_KEY raw" in labels
    assert "header Authorization: kaggle basic auth" in labels
    assert "header Authorization: VAST_API_KEY raw" in labels
    print(f"leak scan: 0 leaks; keys found only where they belong ({len(expected)} places)")
    # What the fakes recorded over the whole module (shown with -s).
    from collections import Counter

    def endpoint(fake, r):
        path = urllib.parse.urlsplit(r.path).path
        if type(fake) is FakeKaggle:
            return path.rsplit("/", 1)[-1] if "/api/v1/" in path else "/".join(path.split("/")[:3])
        return "/".join("N" if p.isdigit() else p for p in path.split("/"))

    for fake in (world.vast, world.kaggle):
        counts = Counter(f"{r.method} {endpoint(fake, r)} {r.status}" for r in fake.requests)
        print(f"{type(fake).__name__}: {len(fake.requests)} requests")
        for k, n in sorted(counts.items()):
            print(f"  {n:3d} x {k}")


def test_the_leak_scan_finds_a_planted_key(world, happy):
    """The scanner is not blind: a key written into a file under the flow's folder is reported."""
    plant = world.tmp / "planted.log"
    plant.write_text(f"oops {world.keys['WANDB_API_KEY']}\n")
    zipped = world.tmp / "planted.zip"
    zipped.write_bytes(zip_files({"inner.txt": world.keys["KAGGLE_KEY"].encode() * 50}))
    try:
        leaks, _ = scan_for_keys(world)
    finally:
        plant.unlink()
        zipped.unlink()
    assert "planted.log: WANDB_API_KEY raw" in leaks
    assert "planted.zip!inner.txt: KAGGLE_KEY raw" in leaks
