"""Harmonising people's own composites (tooling around the trained network).

engine       a trained generator prepared for fast forward passes (`Engine`, `load_engine`)
harmonize    `regionharmony.harmonize` and the `harmonize` command: native-resolution strategies
user_images  reading the images people give, writing results
pairing      folder mode: which composite goes with which mask
"""
