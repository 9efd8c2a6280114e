"""The network of Sec. III-A (Fig. 1), one module per part:

layers      the norm layer, the mask at a feature's size, masked (RAIN) statistics
blocks      the residual UNet levels (Hertz et al.)
attention   S2AM (Cun & Pun), in every decoder level
fusion      `StyleFusion` (Eq. 1-7) and the ablation blocks `AdaINFusion`, `RAINFusion`, `NoFusion`
harmonizer  `Harmonizer` (Fig. 1), `blend`, `build_model`, `load_checkpoint`, measured FLOPs
fold        BatchNorm folded into the convolution before it (inference)
"""

from regionharmony.model.harmonizer import (
    Harmonizer,
    blend,
    build_model,
    count_parameters,
    forward_gflops,
    load_checkpoint,
)

__all__ = [
    "Harmonizer",
    "blend",
    "build_model",
    "count_parameters",
    "forward_gflops",
    "load_checkpoint",
]
