"""Evaluation (Sec. IV): the protocol and what is measured with it.

protocol    `score_batch`: blend, clip, round to 8 bits, score (evaluate, validation, notebooks)
metrics     MSE, PSNR, fMSE, SSIM, fSSIM; aggregation by subset and foreground ratio
baselines   the methods without a network: the composite, Reinhard, histogram matching
evaluate    the `evaluate` command
features    the `features` command: Fig. 10's encoder and decoder feature maps
"""
