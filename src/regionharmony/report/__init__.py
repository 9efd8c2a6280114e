"""The reports (tooling).

render      the `report` command: execute a notebook (papermill), render HTML, the index
notebook    what the notebooks share: loading results, labels, provenance banners
"""
