"""Table V, the blind user study (tooling).

build       the `user-study` command: the static study page and its key; `tally`
votes       the page's seeded shuffles; loading and checking vote files
preference  the tally's statistics: votes, intervals, strengths, agreement
"""
