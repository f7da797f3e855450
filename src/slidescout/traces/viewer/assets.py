"""Front-end libraries (OpenSeadragon) from the npm registry, never copied into the repository.

``web/package.json`` pins the versions and ``web/package-lock.json`` locks them. The viewer looks
for an installed copy, in order:

1. ``$SLIDESCOUT_VIEWER_ASSETS``: a folder holding ``openseadragon.min.js`` (or a ``node_modules``);
2. ``web/node_modules`` next to this file (a source checkout after
   ``npm ci --prefix src/slidescout/traces/viewer/web``; what CI does);
3. ``$SLIDESCOUT_HOME/viewer-web/<lock hash>/node_modules`` (default home ``~/.slidescout``),
   which ``slidescout view`` fills with ``npm ci`` on first use.

Without any of them the viewer still works: it shows a static thumbnail with the regions drawn
as SVG instead of the deep-zoom viewer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from slidescout.core.home import slidescout_home
from slidescout.errors import SlidescoutError

WEB_DIR = Path(__file__).parent / "web"
OSD_SUBDIR = Path("node_modules/openseadragon/build/openseadragon")
OSD_FILE = "openseadragon.min.js"
INSTALL_TIMEOUT_S = 300


class AssetsError(SlidescoutError):
    """The viewer's npm packages could not be found or installed."""


def home_dir() -> Path:
    return slidescout_home()


def lock_hash() -> str:
    try:
        return hashlib.sha256((WEB_DIR / "package-lock.json").read_bytes()).hexdigest()[:12]
    except OSError:
        return "no-lock-file"


def cache_dir() -> Path:
    """Where ``install`` puts node_modules for this lock file."""
    return home_dir() / "viewer-web" / lock_hash()


def _osd_in(folder: Path) -> Path | None:
    for cand in (folder, folder / OSD_SUBDIR):
        if (cand / OSD_FILE).is_file():
            return cand
    return None


def find_openseadragon() -> Path | None:
    """The folder holding ``openseadragon.min.js`` and its ``images/``, if installed anywhere."""
    override = os.environ.get("SLIDESCOUT_VIEWER_ASSETS")
    candidates = [Path(override).expanduser()] if override else []
    candidates += [WEB_DIR, cache_dir()]
    for folder in candidates:
        found = _osd_in(folder)
        if found is not None:
            return found
    return None


def install(target: Path | None = None, *, npm: str | None = None) -> Path:
    """Run ``npm ci`` on the pinned lock file into ``target`` (default ``cache_dir()``).

    Raises ``AssetsError`` with one line saying what to do when npm is missing or fails.
    """
    target = Path(target) if target else cache_dir()
    found = _osd_in(target)
    if found is not None:
        return found
    if not (WEB_DIR / "package-lock.json").is_file():
        raise AssetsError(
            f"the viewer's package-lock.json is missing from {WEB_DIR} (a broken install?); "
            "reinstall slidescout or set SLIDESCOUT_VIEWER_ASSETS"
        )
    npm = npm or shutil.which("npm")
    if not npm:
        raise AssetsError(
            "npm is not installed, so the deep-zoom viewer (OpenSeadragon) is unavailable; "
            "install Node.js (with npm) and run `slidescout view --setup`, or set "
            "SLIDESCOUT_VIEWER_ASSETS to a folder holding openseadragon.min.js"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(WEB_DIR / name, work / name)
        try:
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AssetsError(
                f"`npm ci` for the viewer's OpenSeadragon failed ({type(exc).__name__}); "
                "check your connection to the npm registry and run `slidescout view --setup`"
            ) from None
        if proc.returncode != 0:
            last = next(
                (ln for ln in reversed((proc.stderr or proc.stdout).splitlines()) if ln.strip()), ""
            )
            raise AssetsError(
                f"`npm ci` for the viewer's OpenSeadragon failed ({last.strip()[:200]}); "
                "check your connection to the npm registry and run `slidescout view --setup`"
            )
        if _osd_in(work) is None:
            raise AssetsError(
                "`npm ci` finished but openseadragon.min.js is missing; "
                f"delete {target} and run `slidescout view --setup` again"
            )
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    found = _osd_in(target)
    assert found is not None
    return found


def ensure_openseadragon(*, allow_install: bool = True, log=None) -> Path | None:
    """Find OpenSeadragon, installing it on first use; None (after logging one line) if impossible."""
    found = find_openseadragon()
    if found is not None or not allow_install:
        return found
    if log:
        log(
            f"installing the viewer's OpenSeadragon with npm into {cache_dir()} (first use only)..."
        )
    try:
        return install()
    except AssetsError as exc:
        if log:
            log(f"warning: {exc}; showing static thumbnails instead of deep zoom")
        return None
