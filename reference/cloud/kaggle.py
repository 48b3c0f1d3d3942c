"""The Kaggle calls made from this machine (`fetch`, `kernel`), through the official `kaggle` CLI.

Each call runs ``python -m kaggle ...`` of this environment with the key in the
child's environment (KAGGLE_USERNAME, KAGGLE_KEY), never among its arguments,
and its output passes through :meth:`Keys.redact`. The CLI's own variables point
it elsewhere: ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` sends it to
``http://localhost/api/v1/...``, and the standard ``HTTP_PROXY`` variable (which
the CLI's HTTP library honours) can route that to any port, which is how the
tests reach a loopback fake without binding port 80.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from reference.cloud.secrets import Keys, kaggle_env
from reference.errors import CloudError

__all__ = ["run_kaggle", "dataset_exists", "download_dataset", "unzip_all", "push_kernel",
           "kernel_status", "kernel_output"]  # fmt: skip


def run_kaggle(keys: Keys, *args: str, check: bool = True, timeout: float = 3600) -> str:
    """Run `kaggle ARGS...`; return its (redacted) output. CloudError naming the command on failure."""
    cmd = [sys.executable, "-m", "kaggle", *args]
    try:
        proc = subprocess.run(
            cmd, env=kaggle_env(keys), capture_output=True, text=True, timeout=timeout
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise CloudError(f"kaggle {' '.join(args[:2])}: no answer in {timeout:.0f} s") from None
    out = keys.redact(proc.stdout + proc.stderr)
    failed = proc.returncode != 0 or re.search(r"\berror:", out, re.IGNORECASE)
    if check and failed:
        last = out.strip().splitlines()[-1] if out.strip() else f"exit code {proc.returncode}"
        raise CloudError(f"kaggle {' '.join(args[:2])} {args[2] if len(args) > 2 else ''}: {last}")
    return out


def dataset_exists(keys: Keys, ref: str) -> bool:
    """Whether the Kaggle dataset `ref` (owner/slug) exists and this key can see it."""
    try:
        run_kaggle(keys, "datasets", "status", ref)
    except CloudError:
        return False
    return True


def unzip_all(archive: Path, dest: Path) -> list[Path]:
    """Extract `archive` into `dest`, then each zip inside it into a folder of its name.

    (`kaggle datasets create --dir-mode zip` uploads every folder as FOLDER.zip; the
    published source, shakyo-src.zip, stays a zip.)
    Returns the files extracted, relative to `dest`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest)
    for inner in sorted(dest.glob("*.zip")) + sorted(dest.glob("*/*.zip")):
        if inner.name == "shakyo-src.zip":  # the code, kept whole for the Kaggle notebook
            continue
        with zipfile.ZipFile(inner) as z:
            z.extractall(inner.with_suffix(""))
        inner.unlink()
    return sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())


def download_dataset(keys: Keys, ref: str, dest: Path) -> list[Path]:
    """Download the latest version of dataset `ref` into `dest` (unzipped); the files, relative."""
    tmp = dest.parent / f".download-{dest.name}"
    tmp.mkdir(parents=True, exist_ok=True)
    run_kaggle(keys, "datasets", "download", "-d", ref, "-p", str(tmp), "--force", "-q")
    archive = tmp / f"{ref.split('/')[1]}.zip"
    if not archive.is_file():
        raise CloudError(f"kaggle datasets download {ref}: no {archive.name} was written")
    try:
        files = unzip_all(archive, dest)
    except zipfile.BadZipFile:
        raise CloudError(
            f"kaggle datasets download {ref}: {archive} is not a valid zip; retry"
        ) from None
    archive.unlink()
    tmp.rmdir()
    return files


def push_kernel(keys: Keys, folder: Path) -> str:
    """`kaggle kernels push -p FOLDER`; returns the CLI's line (version and URL)."""
    return run_kaggle(keys, "kernels", "push", "-p", str(folder)).strip()


def kernel_status(keys: Keys, ref: str) -> str:
    """The kernel's status word, lower case: queued, running, complete, error, cancel..."""
    out = run_kaggle(keys, "kernels", "status", ref)
    m = re.search(r'has status "([^"]+)"', out)
    if not m:
        raise CloudError(f"kaggle kernels status {ref}: unexpected answer {out.strip()[:120]!r}")
    return m.group(1).rsplit(".", 1)[-1].lower()


def kernel_output(keys: Keys, ref: str, dest: Path) -> list[Path]:
    """`kaggle kernels output REF -p DEST`: the notebook's output files and its log."""
    dest.mkdir(parents=True, exist_ok=True)
    run_kaggle(keys, "kernels", "output", ref, "-p", str(dest), "--force")
    for log in dest.glob("*.log"):
        log.write_bytes(keys.redact_bytes(log.read_bytes()))
    return sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
