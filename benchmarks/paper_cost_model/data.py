"""iHarmony4's split sizes (DoveNet, CVPR 2020, Table 1), DIH99, and the sizes assumed for
their originals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubsetSpec:
    train: int  # composites (= pairs) in IHD_train
    test: int  # composites in IHD_test
    reals: int  # distinct real images: a real serves several composites
    size: tuple[int, int]  # (width, height) of a typical original: an ASSUMPTION, see below

    @property
    def pairs(self) -> int:
        return self.train + self.test


# Split sizes are iHarmony4's. Distinct reals: DoveNet's counts for HAdobe5k (4,328), HFlickr
# (4,833) and Hday2night (106); HCOCO's is taken as one real per composite (an upper bound).
# Sizes are assumptions for the cost model: COCO photographs ~640 x 480, MIT-Adobe FiveK photos
# ~4256 x 2832 (many reach 6048 x 4032), Flickr and day2night ~1024 x 768.
SUBSETS: dict[str, SubsetSpec] = {
    "HCOCO": SubsetSpec(38545, 4283, 42828, (640, 480)),
    "HAdobe5k": SubsetSpec(19437, 2160, 4328, (4256, 2832)),
    "HFlickr": SubsetSpec(7449, 828, 4833, (1024, 768)),
    "Hday2night": SubsetSpec(311, 133, 106, (1024, 768)),
}
HIGHRES_SUBSET = "HAdobe5k"  # Table IV: evaluate_highres runs on this subset only
REAL_COMPOSITES = 99  # DIH99 (harmonize_real), at their own resolution (~1024 x 768 assumed)
REAL_COMPOSITE_SIZE = (1024, 768)
