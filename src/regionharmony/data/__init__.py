"""iHarmony4 data, one module per job:

    layout    subsets, splits, file names, list files, `Sample`, `list_samples` (torch-free)
    images    reading and resizing images and masks, `load_pair`
    dataset   the training / evaluation transforms and `HarmonyDataset`
    check     `check-data`: every problem of a root, naming the file
    prepare   `prepare`: the resize cache training reads
    mini      `make-mini`: the embedded default dataset, built from packaged photographs

The layout and image names are re-exported here; the torch-dependent modules are imported from
their own module (``from regionharmony.data.dataset import HarmonyDataset``).
"""

from regionharmony.data.images import (
    load_pair,
    mask_array,
    open_image,
    read_image,
    read_mask,
    resize_binary_mask,
    resize_image,
    rgb_array,
)
from regionharmony.data.layout import (
    JPEG_SETTINGS,
    MINI_MANIFEST,
    OFFICIAL_COUNTS,
    OFFICIAL_TOTALS,
    SPLITS,
    SUBSETS,
    DataError,
    Sample,
    find_sample,
    list_samples,
    make_sample,
    parse_composite_name,
)

__all__ = [
    "JPEG_SETTINGS",
    "MINI_MANIFEST",
    "OFFICIAL_COUNTS",
    "OFFICIAL_TOTALS",
    "SPLITS",
    "SUBSETS",
    "DataError",
    "Sample",
    "find_sample",
    "list_samples",
    "load_pair",
    "make_sample",
    "mask_array",
    "open_image",
    "parse_composite_name",
    "read_image",
    "read_mask",
    "resize_binary_mask",
    "resize_image",
    "rgb_array",
]
