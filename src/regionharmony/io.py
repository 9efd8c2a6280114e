"""Small shared helpers: atomic writes of files and directories, and the code version stamped
into results."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` on a temporary sibling of `path` (creating folders), then rename it
    over `path`: a reader never sees half a file, and a failure leaves no temporary behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_save(obj: object, path: Path) -> None:
    """torch.save through `atomic_write`, with bytes that depend only on `obj`.

    torch.save names the zip archive's top folder after the file it is given (a temporary
    `.model.pt.<PID>.tmp` would put the PID into every record name); saving into an open file
    handle makes torch use its fixed name `archive/` instead, so the same weights give the
    same bytes whichever process wrote them.
    """
    import torch

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            try:
                torch.save(obj, handle)
            except RuntimeError as err:
                # a failed write (a full disk) surfaces as torch's RuntimeError from closing
                # the archive, with the OSError as its context: raise that, naming the file
                cause = err.__context__
                if isinstance(cause, OSError) and cause.errno is not None:
                    raise OSError(cause.errno, cause.strerror, str(path)) from None
                raise

    atomic_write(path, save)


@contextmanager
def atomic_directory(dest: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary sibling of `dest` that becomes `dest` when the block succeeds.

    If the block raises, the temporary directory is removed and `dest` is left as it was. An
    existing non-empty `dest` is refused (`FileExistsError`) unless `replace`; it is then
    swapped out only after the new content is complete.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a directory")
    if not replace and dest.is_dir() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty (pass --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp creates 0700
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            dest.rename(old / dest.name)
            tmp.rename(dest)
            shutil.rmtree(old)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# The code a trained model depends on (paths relative to the package): the method, its data,
# the trainer, the validation protocol and the shared modules they use. `dvc.yaml`'s train@
# stages list exactly these as their code dependencies and the resume fingerprint digests them
# (tests/test_pipeline.py holds both to this list): an edit to a report, the user study or
# `harmonize` re-runs neither the trainings nor throws a checkpoint away.
TRAINING_CODE: tuple[str, ...] = (
    "__init__.py",
    "cli.py",
    "config.py",
    "cpu_threads.py",
    "errors.py",
    "io.py",
    "options.py",
    "params.py",
    "runtime.py",
    "model",
    "loss",
    "data",
    "train",
    "evaluation/__init__.py",
    "evaluation/metrics.py",
    "evaluation/protocol.py",
)
# ... and what scoring a model depends on: the evaluate@ stages' code dependencies
EVALUATION_CODE: tuple[str, ...] = (*TRAINING_CODE[:-3], "evaluation")


def _source_files(parts: tuple[str, ...] | None) -> list[Path]:
    roots = [PACKAGE_DIR] if parts is None else [PACKAGE_DIR / p for p in parts]
    files = set()
    for root in roots:
        candidates = [root] if root.is_file() else root.rglob("*")
        files.update(
            p for p in candidates if p.suffix in (".py", ".html") and "__pycache__" not in p.parts
        )
    return sorted(files)


def source_digest(parts: tuple[str, ...] | None = None) -> str:
    """SHA-256 over the package's source files (path and content), sorted: what the code is.
    `parts` (package-relative files and folders) restricts it, e.g. to `TRAINING_CODE`."""
    digest = hashlib.sha256()
    for path in _source_files(parts):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_version(parts: tuple[str, ...] | None = None) -> str:
    """The version stamped into results: a digest of the package source ("src-" + 12 hex), of
    the files in `parts` when given (a model is stamped with its `TRAINING_CODE`).

    A content digest rather than the git commit, so that the same code gives byte-identical
    outputs in any clone and at any later commit (the committed dvc.lock then matches a fresh
    `dvc repro`); `regionharmony summary` prints the digest of the installed code.
    """
    return "src-" + source_digest(parts)[:12]
