"""Harmonising people's own composites (tooling around the trained network).

engine       a trained generator prepared for fast forward passes (`Engine`, `load_engine`)
harmonize    `regionharmony.harmonize` and the `harmonize` command
strategies   carrying the correction from the working resolution to the composite's own
user_images  reading the images people give, writing results
pairing      folder mode: which composite goes with which mask
"""
