"""The tally of the blind user study (Table V): votes, preference, intervals, strengths and
agreement, from the votes files `regionharmony.study.votes` loads and validates.

Statistics (all over answered votes; M candidates per group, the composite among them):

* votes per method and preference = votes / all votes (the paper's Table V);
* bootstrap percentile intervals over participants (resample participants with replacement,
  recompute): the participants are the sampled unit of the paper's study;
* a Plackett-Luce strength per method, from first choices only (Luce's choice model,
  P(i chosen from S) = p_i / sum_{j in S} p_j), fitted by Hunter's (2004) MM algorithm, with
  strengths normalised to sum 1. When every group shows every method (as every study built
  here does), its maximum-likelihood estimate is exactly the vote share; it differs only when
  groups show different sets. It also gives P(i preferred over j) = p_i / (p_i + p_j);
* agreement between participants: Fleiss' kappa over the groups answered by at least two
  participants (the variable-raters form: P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1))).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regionharmony.study.votes import LoadedVotes, StudyKey, Vote, load_key, load_votes


def choices_frame(votes: Iterable[Vote]) -> pd.DataFrame:
    """One row per answered vote: participant, group, group_key, subset, position, method, shown."""
    rows = [
        {
            "participant": v.participant,
            "group": v.group,
            "group_key": v.group_key,
            "subset": v.group_key.partition("/")[0] if "/" in v.group_key else "",
            "position": v.position,
            "method": v.choice,
            "shown": v.shown,
        }
        for v in votes
        if v.choice is not None
    ]
    columns = ["participant", "group", "group_key", "subset", "position", "method", "shown"]
    return pd.DataFrame(rows, columns=columns)


def vote_table(choices: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Votes, preference (% of all votes) and rank (1 = most votes; ties share the best rank)."""
    votes = choices["method"].value_counts().reindex(list(methods), fill_value=0).astype(int)
    total = int(votes.sum())
    preference = 100 * votes / total if total else votes * np.nan
    table = pd.DataFrame({"votes": votes, "preference": preference})
    table["rank"] = votes.rank(ascending=False, method="min").astype(int)
    table.index.name = "method"
    return table


def _aggregate(
    choices: pd.DataFrame, methods: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per participant, per distinct choice set: wins of each method.

    Returns (sets: U x M 0/1 matrix of the distinct sets shown, wins: P x U x M counts,
    participants).
    """
    index = {m: i for i, m in enumerate(methods)}
    set_keys = sorted({frozenset(s) for s in choices["shown"]}, key=sorted)
    set_index = {s: u for u, s in enumerate(set_keys)}
    participants = sorted(choices["participant"].unique())
    p_index = {p: i for i, p in enumerate(participants)}
    sets = np.zeros((len(set_keys), len(methods)))
    for s, u in set_index.items():
        sets[u, [index[m] for m in s]] = 1
    wins = np.zeros((len(participants), len(set_keys), len(methods)))
    for participant, shown, method in zip(
        choices["participant"], choices["shown"], choices["method"], strict=True
    ):
        wins[p_index[participant], set_index[frozenset(shown)], index[method]] += 1
    return sets, wins, participants


def luce_mm(
    sets: np.ndarray, wins: np.ndarray, tol: float = 1e-12, max_iter: int = 100_000
) -> np.ndarray:
    """Plackett-Luce strengths from first choices (Luce's choice model) by Hunter's MM.

    sets: U x M 0/1 (distinct choice sets), wins: U x M (how often each method was chosen from
    each set). Update: p_i <- W_i / sum_u n_u [i in S_u] / sum_{j in S_u} p_j, with W_i the
    wins of i and n_u the choices made from S_u; normalised to sum 1 after every step.
    A method never chosen gets 0; one never shown gets NaN.
    """
    shown = sets.T @ wins.sum(axis=1) > 0  # method appears in a set someone chose from
    total_wins = wins.sum(axis=0)
    n_per_set = wins.sum(axis=1)
    p = np.where(shown, 1.0, 0.0)
    if total_wins.sum() == 0:
        return np.full(sets.shape[1], np.nan)
    p /= p.sum()
    for _ in range(max_iter):
        denominators = sets @ p  # U
        used = n_per_set > 0
        weight = sets[used].T @ (n_per_set[used] / denominators[used])  # M
        new = np.divide(total_wins, weight, out=np.zeros_like(p), where=weight > 0)
        new /= new.sum()
        done = np.max(np.abs(new - p)) < tol
        p = new
        if done:
            break
    return np.where(shown, p, np.nan)


def luce_strengths(choices: pd.DataFrame, methods: Sequence[str]) -> pd.Series:
    """Plackett-Luce (first-choice) strength per method, summing to 1 (see `luce_mm`)."""
    if choices.empty:
        return pd.Series(np.nan, index=list(methods), name="strength")
    sets, wins, _ = _aggregate(choices, methods)
    return pd.Series(luce_mm(sets, wins.sum(axis=0)), index=list(methods), name="strength")


def preferred_over(strengths: pd.Series) -> pd.DataFrame:
    """P(row preferred over column) = p_row / (p_row + p_col); the diagonal is NaN."""
    p = strengths.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = p[:, None] / (p[:, None] + p[None, :])
    np.fill_diagonal(matrix, np.nan)
    return pd.DataFrame(matrix, index=strengths.index, columns=strengths.index)


def bootstrap(
    choices: pd.DataFrame,
    methods: Sequence[str],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile intervals over participants for preference (%) and strength.

    Each replicate draws as many participants as there are, with replacement, and recomputes
    the vote shares and the Plackett-Luce strengths from their votes. Columns:
    preference_low/high, strength_low/high (NaN without votes).
    """
    columns = ["preference_low", "preference_high", "strength_low", "strength_high"]
    if choices.empty:
        return pd.DataFrame(np.nan, index=list(methods), columns=columns)
    sets, wins, participants = _aggregate(choices, methods)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(participants), size=(n_boot, len(participants)))
    shares = np.empty((n_boot, len(methods)))
    strengths = np.empty((n_boot, len(methods)))
    for b, drawn in enumerate(draws):
        sample = wins[drawn].sum(axis=0)  # U x M
        counts = sample.sum(axis=0)
        shares[b] = 100 * counts / counts.sum() if counts.sum() else np.nan
        strengths[b] = luce_mm(sets, sample, tol=1e-9)
    alpha = 100 * (1 - level) / 2
    out = pd.DataFrame(index=list(methods), columns=columns, dtype=float)
    out["preference_low"], out["preference_high"] = np.nanpercentile(
        shares, [alpha, 100 - alpha], axis=0
    )
    out["strength_low"], out["strength_high"] = np.nanpercentile(
        strengths, [alpha, 100 - alpha], axis=0
    )
    return out


def fleiss_kappa(choices: pd.DataFrame, methods: Sequence[str]) -> dict[str, float]:
    """Fleiss' kappa over groups answered by >= 2 participants (variable numbers of raters).

    Returns kappa, observed agreement P-bar (the chance that two participants who answered the
    same group chose the same image), chance agreement P_e = sum_j p_j^2, the number of groups
    used and the mean number of participants per group. NaN where undefined.
    """
    counts = pd.crosstab(choices["group"], choices["method"]).reindex(
        columns=list(methods), fill_value=0
    )
    counts = counts[counts.sum(axis=1) >= 2]
    result = {"kappa": np.nan, "observed": np.nan, "expected": np.nan}
    result |= {"groups": float(len(counts)), "raters_per_group": np.nan}
    if counts.empty:
        return result
    n = counts.to_numpy(dtype=float)
    raters = n.sum(axis=1)
    per_group = (n * (n - 1)).sum(axis=1) / (raters * (raters - 1))
    observed = per_group.mean()
    share = n.sum(axis=0) / raters.sum()
    expected = float((share**2).sum())
    kappa = (observed - expected) / (1 - expected) if expected < 1 else np.nan
    result.update(
        kappa=float(kappa),
        observed=float(observed),
        expected=expected,
        raters_per_group=float(raters.mean()),
    )
    return result


def per_participant(choices: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Votes per participant (rows) and method (columns)."""
    table = pd.crosstab(choices["participant"], choices["method"])
    return table.reindex(columns=list(methods), fill_value=0)


def per_subset(choices: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Preference (%) per subset (first folder of the group name; rows) and method."""
    table = pd.crosstab(choices["subset"], choices["method"], normalize="index") * 100
    return table.reindex(columns=list(methods), fill_value=0.0)


@dataclass
class Tally:
    """Everything the Table V report shows."""

    key: StudyKey
    loaded: LoadedVotes
    choices: pd.DataFrame
    table: pd.DataFrame  # votes, preference, rank, strength, CI columns
    agreement: dict[str, float]

    @property
    def participants(self) -> int:
        return self.choices["participant"].nunique()


def tally(votes_dir: str | Path, key_path: str | Path, n_boot: int = 2000, seed: int = 0) -> Tally:
    """Load the key and every votes file, and compute the whole table."""
    key = load_key(key_path)
    loaded = load_votes(votes_dir, key)
    choices = choices_frame(loaded.votes)
    table = vote_table(choices, key.methods)
    table["strength"] = luce_strengths(choices, key.methods)
    table = table.join(bootstrap(choices, key.methods, n_boot, seed=seed))
    return Tally(key, loaded, choices, table, fleiss_kappa(choices, key.methods))
