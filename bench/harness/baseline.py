"""Release builds of older revisions, for `bench/run --baseline-rev REV`.

A revision is exported with `git archive` (no worktree is registered, the
repository is only read) into `<target>/bench-baseline/src-<hash>`, built
with `cargo build --release --locked --bin stopgate` into a target directory
that all baselines share (`<target>/bench-baseline/target`: dependencies
built for one revision are reused by the next), and its binary is kept as
`<target>/bench-baseline/bin/<full hash>/stopgate`. That binary is the
cache: a second run with the same revision builds nothing. The export is
removed after the build; `rm -rf <target>/bench-baseline/target` frees the
build's disk and keeps the binaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable


class BaselineError(Exception):
    pass


def resolve(root: Path, rev: str) -> tuple[str, str]:
    """The full and the short hash of `rev` (a hash, a branch, `HEAD~3`...)."""
    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BaselineError(f"--baseline-rev {rev}: not a commit of this repository")
    full = r.stdout.strip()
    short = subprocess.run(["git", "rev-parse", "--short", full], cwd=root, capture_output=True,
                           text=True, check=True).stdout.strip()
    return full, short


def commit_count(root: Path, full: str) -> int:
    """Commits reachable from `full`: orders revisions on one history, newest last."""
    return int(subprocess.run(["git", "rev-list", "--count", full], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip())


def subject(root: Path, full: str) -> str:
    return subprocess.run(["git", "log", "-1", "--format=%s", full], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()


def build(root: Path, target: Path, rev: str, log: Callable[[str], None],
          timeout_s: float = 3600) -> tuple[str, str, Path]:
    """Builds `rev` (unless its binary is cached); returns (full, short, path of its stopgate)."""
    full, short = resolve(root, rev)
    cache = target / "bench-baseline"
    binary = cache / "bin" / full / "stopgate"
    if binary.exists():
        log(f"baseline {short}: cached build {binary}")
        return full, short, binary
    src = cache / f"src-{full}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    try:
        archive = subprocess.Popen(["git", "archive", "--format=tar", full], cwd=root,
                                   stdout=subprocess.PIPE)
        # -m: the files get the time of extraction, not of their commit. The
        # target directory is shared between revisions, and cargo judges a
        # crate fresh by mtime: a revision committed before the last build
        # would otherwise get the previous revision's binary.
        untar = subprocess.run(["tar", "-x", "-m", "-C", str(src)], stdin=archive.stdout)
        archive.stdout.close()
        if archive.wait() != 0 or untar.returncode != 0:
            raise BaselineError(f"git archive {short} failed")
        cmd = ["cargo", "build", "--release", "--locked", "--bin", "stopgate"]
        log(f"baseline {short}: building ({' '.join(cmd)}, CARGO_TARGET_DIR={cache / 'target'}); "
            "the first build takes minutes")
        env = dict(os.environ, CARGO_TARGET_DIR=str(cache / "target"))
        try:
            r = subprocess.run(cmd, cwd=src, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise BaselineError(f"building {short} took more than {timeout_s:.0f} s")
        if r.returncode != 0:
            raise BaselineError(f"building {short} failed (exit {r.returncode})")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        shutil.copy2(cache / "target" / "release" / "stopgate", partial)
        partial.rename(binary)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return full, short, binary
