"""The two plans of running the paper profile that the cost model compares, as data.

Both are fixed here rather than read from params.yaml: "old" is not what params.yaml
describes, and the new plan's worker counts are relative to `--cpu-workers` (params.yaml's are
absolute, for 16 cores). params.yaml gives the counts (`settings`): variants, budgets, epochs,
batch, seeds, sizes.

Worker specs: "main" = no workers (the main process decodes, serially with the GPU and the
scoring); "N/rank" = N workers in each training process (all ranks together capped at the
cores); "cores" = --cpu-workers; "cores-N" = --cpu-workers minus N.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBSET_VALIDATION = 500  # the new plan's fixed validation subset


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    not_trained: tuple[str, ...]  # params.yaml variants this plan does not train (or evaluate)
    shares_prefixes: bool  # a prefix variant that is exact is copied from its parent's run
    switch_studies: bool  # studies: only those the paper switch keeps (else every one)
    val_variants: tuple[str, ...] | None  # None: every trained variant validates every epoch
    val_pairs: int | None  # pairs per validation; None: the whole test split
    val_workers: str
    loader_workers: str  # the training DataLoader, all ranks together
    eval_workers: str  # evaluate@*, evaluate_baseline@*, evaluate_highres@*
    ssim: str  # "2d": scipy.ndimage.correlate, 11 x 11 | "separable": two correlate1d passes
    check_workers: str
    prepare_workers: str
    cache_dataset: bool  # data.dvc: the dataset copied into .dvc/cache (cache type copy)
    checkpoint_every: int  # steps between checkpoints, plus one at every epoch end (0: none)
    checkpoint_minutes: float  # one file overwritten every N minutes of wall clock (0: none)


PLANS: dict[str, Plan] = {
    # Every variant trained (fusion_style too), every epoch of every variant validated on all
    # 7,404 test pairs in the main process, 8 loader workers per rank, evaluation single-process
    # with the 2-D SSIM, check_data single-process, the dataset copied into .dvc/cache, a
    # checkpoint every 2,000 steps and at every epoch end. Its title is part of the printed table.
    "old": Plan(
        name="old",
        title="old plan (the code at acfbd9c)",
        not_trained=(),
        shares_prefixes=False,
        switch_studies=False,
        val_variants=None,
        val_pairs=None,
        val_workers="main",
        loader_workers="8/rank",
        eval_workers="main",
        ssim="2d",
        check_workers="main",
        prepare_workers="cores",
        cache_dataset=True,
        checkpoint_every=2000,
        checkpoint_minutes=0.0,
    ),
    # As the code runs the paper profile: every paper variant trained but fusion_style, which
    # is l1_pixel_sf's first half (prefix_variants; exact under the paper's constant lr); the
    # studies only where the paper switch keeps them (it keeps none); only the three
    # Fig. 8/9 variants validate (train.validate), on a fixed subset of 500 test pairs decoded
    # by loader workers; training loads with all cores but two; evaluation and check_data use
    # every core, the SSIM is separable; data.dvc has cache: false; one checkpoint file is
    # overwritten every 30 minutes.
    "new": Plan(
        name="new",
        title="new plan",
        not_trained=(),
        shares_prefixes=True,
        switch_studies=True,
        val_variants=("fusion_adain", "fusion_rain", "fusion_style"),
        val_pairs=SUBSET_VALIDATION,
        val_workers="cores",
        loader_workers="cores-2",
        eval_workers="cores",
        ssim="separable",
        check_workers="cores",
        prepare_workers="cores",
        cache_dataset=False,
        checkpoint_every=0,
        checkpoint_minutes=30.0,
    ),
}


def resolve_workers(spec: str, cores: int, gpus: int) -> int:
    """Worker processes of a spec (0: none, the main process does the work)."""
    if spec == "main":
        return 0
    if spec.endswith("/rank"):
        return min(int(spec.removesuffix("/rank")) * gpus, cores)
    if spec == "cores":
        return cores
    if spec.startswith("cores-"):
        return max(1, cores - int(spec.removeprefix("cores-")))
    raise ValueError(f"unknown worker spec {spec!r}")
