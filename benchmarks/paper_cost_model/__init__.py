"""The cost model behind benchmarks/paper_cost.py, one idea a module: `data` (iHarmony4's
sizes), `plans` (the two plans compared), `settings` (the counts of params.yaml and dvc.yaml),
`measure` (per-item costs measured here), `arithmetic` (a plan's stages, hours and disk),
`launch` (several GPUs) and `report` (the printed tables and the JSON)."""
