"""Mermaid and KaTeX for an offline site: fetched from the npm registry, pinned, checked.

`npm pack NAME@VERSION` downloads the package tarball into build/npm/ once; its
SHA-512 must equal the pinned integrity below (the value the registry publishes
as ``dist.integrity``), so a changed or corrupted tarball fails the build. The
few files the pages load are extracted into the site's assets/vendor/.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from sitegen.paths import BUILD, SiteError


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's dist.integrity: "sha512-" + base64 of the tarball's SHA-512
    files: dict[str, str]  # path in the tarball (below package/) -> path below assets/vendor/


# Mermaid 11 (Material 9.x uses window.mermaid when it is defined); KaTeX renders the
# formulas that pymdownx.arithmatex marks. Bump a version together with its integrity:
# `npm view NAME@VERSION dist.integrity`.
PACKAGES = (
    Package(
        "mermaid",
        "11.17.2",
        "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
        {"dist/mermaid.min.js": "mermaid/mermaid.min.js", "LICENSE": "mermaid/LICENSE"},
    ),
    Package(
        "katex",
        "0.16.22",
        "sha512-XCHRdUw4lf3SKBaJe4EvgqIuWwkPSo9XoeO8GjQW94Bp7TWv9hNhzZjZ+OH9yf1UmLygb7DIT5GSFQiyt16zYg==",
        {
            "dist/katex.min.js": "katex/katex.min.js",
            "dist/katex.min.css": "katex/katex.min.css",
            "dist/contrib/auto-render.min.js": "katex/contrib/auto-render.min.js",
            "dist/fonts/": "katex/fonts/",  # a folder: every file below it
            "LICENSE": "katex/LICENSE",
        },
    ),
)

NPM_CACHE = BUILD / "npm"


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def tarball(pkg: Package, cache: Path = NPM_CACHE) -> Path:
    """The verified tarball of ``pkg`` in ``cache`` (downloaded with `npm pack` when missing)."""
    path = cache / f"{pkg.name}-{pkg.version}.tgz"
    if not path.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SiteError(
                "npm not found: the site needs it once to fetch Mermaid and KaTeX "
                "(Debian: apt-get install npm)"
            )
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        proc = subprocess.run(
            [npm, "pack", f"{pkg.name}@{pkg.version}", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        got = tmp / f"{pkg.name}-{pkg.version}.tgz"
        if proc.returncode != 0 or not got.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SiteError(
                f"npm pack {pkg.name}@{pkg.version} failed ({last}); the npm registry must be reachable once"
            )
        got.replace(path)
        shutil.rmtree(tmp, ignore_errors=True)
    found = _integrity(path)
    if found != pkg.integrity:
        path.unlink()
        raise SiteError(
            f"{path.name}: integrity {found[:24]}... is not the pinned {pkg.integrity[:24]}...; "
            "removed it, rerun to fetch it again"
        )
    return path


def install(dest: Path, cache: Path = NPM_CACHE) -> list[Path]:
    """Extract the pinned files of every package into ``dest`` (the site's assets/vendor/)."""
    written: list[Path] = []
    for pkg in PACKAGES:
        with tarfile.open(tarball(pkg, cache), "r:gz") as tar:
            members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
            for src, dst in pkg.files.items():
                names = [n for n in members if n.startswith(src)] if src.endswith("/") else [src]
                if not names or any(n not in members for n in names):
                    raise SiteError(f"{pkg.name}@{pkg.version}: the tarball has no {src}")
                for name in names:
                    out = dest / (dst + name[len(src) :] if src.endswith("/") else dst)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    f = tar.extractfile(members[name])
                    assert f is not None
                    out.write_bytes(f.read())
                    written.append(out)
    return written
