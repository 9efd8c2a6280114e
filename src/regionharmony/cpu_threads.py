"""CPU threads and the OpenMP wait policy, chosen before torch starts (no torch import here).

torch on the CPU runs its operators on a GNU OpenMP (libgomp) thread team, one thread per core
by default, whose idle threads spin for a while before they sleep. When another process wants
the same cores, every parallel region then waits for threads that are spinning or descheduled:
on a 2-core machine a short training ran ~30x slower beside a competitor instead of ~2x (issue
11; `benchmarks/cpu_sharing.py` measures it). So, unless the user chose otherwise:

* ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spinning;
* ``OMP_NUM_THREADS`` = half the usable cores, at least 1 (1 on a 2-core machine, where one
  thread was faster than two both alone and beside another job).

The knob is the environment variable ``REGIONHARMONY_THREADS``:

* unset or ``auto``: the defaults above; an ``OMP_NUM_THREADS`` / ``OMP_WAIT_POLICY`` already
  in the environment wins;
* a positive integer N: N threads (``OMP_NUM_THREADS=N``), passive waiting unless set;
* ``library``: change nothing (torch's and libgomp's own defaults).

libgomp reads these variables once, when torch is first imported, so they are set when the
package is imported (`regionharmony/__init__.py`); in a session that imported torch earlier,
set them in the environment before starting Python, or call ``torch.set_num_threads``.

The kernel path is the second knob, ``REGIONHARMONY_KERNELS``: unset or ``native``, torch's
fastest kernels for this CPU (their rounding depends on its vector width and caches);
``portable``, the setting that gave the same bytes under every stand-in for another CPU kind
(docs/pipeline.md, 'The same bytes on another CPU'): ATen's AVX2 kernels whatever the CPU's own
width (``ATEN_CPU_CAPABILITY=avx2``: torch's code, the same instructions on every x86-64 CPU
with AVX2 and FMA), MKL's reproducible branch for Intel and compatible CPUs
(``MKL_CBWR=COMPATIBLE``) and one thread, all forced, plus oneDNN and NNPACK off once torch is
loaded (`runtime.py`). The
command line's ``regionharmony --kernels PATH COMMAND`` sets it for one command (`choose_kernels`);
the pipeline's stages pass params.yaml's ``cpu_kernels`` that way.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping

KNOB = "REGIONHARMONY_THREADS"
KERNELS_KNOB = "REGIONHARMONY_KERNELS"
# what the portable kernel path forces before torch loads (see the module docstring)
PORTABLE_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}


def kernel_path(environ: MutableMapping[str, str] | None = None) -> str:
    """ "portable" or "native", from REGIONHARMONY_KERNELS (an unknown value: native, warned)."""
    environ = os.environ if environ is None else environ
    choice = environ.get(KERNELS_KNOB, "native").strip().lower() or "native"
    if choice not in ("native", "portable"):
        warnings.warn(
            f"{KERNELS_KNOB}={environ[KERNELS_KNOB]!r} is neither 'native' nor 'portable'; "
            "using native",
            stacklevel=2,
        )
        return "native"
    return choice


def choose_kernels(path: str) -> None:
    """Put this process (and the processes it starts) on kernel path `path` before torch loads:
    REGIONHARMONY_KERNELS and the thread policy's variables, set again. Once torch is loaded the
    path it runs is fixed: asking for another one then is a ValueError."""
    if path not in ("native", "portable"):
        raise ValueError(f"--kernels must be native or portable, got {path!r}")
    if "torch" in sys.modules:
        if kernel_path() != path:
            raise ValueError(
                f"--kernels {path}: torch is already loaded on the {kernel_path()} path in this "
                f"process; set {KERNELS_KNOB}={path} before Python starts"
            )
        return
    os.environ[KERNELS_KNOB] = path
    if path == "native":
        for name in PORTABLE_ENVIRONMENT:
            os.environ.pop(name, None)
    configure_cpu_threads()


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or cgroups)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(cpus: int) -> int:
    return max(1, cpus // 2)


def configure_cpu_threads(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set OMP_NUM_THREADS and OMP_WAIT_POLICY in `environ` (default: os.environ) as the module
    docstring says; returns the variables it set."""
    environ = os.environ if environ is None else environ
    choice = environ.get(KNOB, "auto").strip().lower() or "auto"
    forced: dict[str, str] = {}
    if kernel_path(environ) == "portable":
        forced = {**PORTABLE_ENVIRONMENT, "OMP_NUM_THREADS": "1"}
        if choice not in ("auto", "library", "1"):
            warnings.warn(f"{KERNELS_KNOB}=portable runs one thread; {KNOB} ignored", stacklevel=2)
        choice = "1"
    if choice == "library":
        return {}
    if choice.isdigit() and int(choice) > 0:
        forced.setdefault("OMP_NUM_THREADS", str(int(choice)))
    elif choice != "auto":
        warnings.warn(
            f"{KNOB}={environ[KNOB]!r} is not a positive number of threads, 'auto' or "
            "'library'; using auto",
            stacklevel=2,
        )
    defaults = {
        "OMP_WAIT_POLICY": "PASSIVE",
        "OMP_NUM_THREADS": str(default_threads(usable_cpus())),
    }
    applied = {k: v for k, v in defaults.items() if k not in environ} | forced
    environ.update(applied)
    if "OMP_NUM_THREADS" in applied and environ is os.environ and "torch" in sys.modules:
        # torch (and libgomp) started before this package: the variable comes too late
        sys.modules["torch"].set_num_threads(int(applied["OMP_NUM_THREADS"]))
    return applied
