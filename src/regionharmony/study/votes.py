"""Votes of the blind user study (Table V): the page's seeded shuffles, and loading and
validating votes files.

A study built by `regionharmony user-study build` has two halves (see `regionharmony.study.build`):
the participant folder (page + images, opaque ids only) and the key file, kept outside it, that
maps every opaque option id to its method. A votes file is what the page's export button
downloads for one participant::

    {"format": "regionharmony-user-study-votes", "version": 1, "study_id": "s…",
     "participant": "p01", "order_seed": 123, "group_order": ["g…", …],
     "exported": "2025-…Z",
     "votes": [{"group": "g…", "position": 1, "seed": 456, "shown": ["o…", …],
                "choice": "o…" | null, "choice_index": 2 | null, "time": "…Z",
                "elapsed_ms": 1234}, …]}

`choice: null` marks a skipped group; it counts as no vote.

Validation (`load_votes`) rejects a whole file, with a message naming it, when it is not JSON,
has the wrong format/version, comes from another study (study id), names an unknown group or
option, repeats a group, or records an order that the page could not have shown: every vote's
`seed` must be `group_seed(participant, group)` and `shown` must be `shuffled(options, seed)`,
`group_order` must be `shuffled(group ids, order_seed(participant))` and each `position` the
group's place in it, with the same string hash (FNV-1a, 32 bit, over UTF-8) and PRNG
(mulberry32) + Fisher-Yates shuffle as the page's JavaScript, ported here bit for bit.
Duplicates: a second file of a participant already seen (files taken in name order) is rejected,
naming the first one. A participant id is a JSON string (the page always writes one), not empty and
without surrounding spaces; a number such as `5` is refused as not a string, not converted (its
seeds would be those of some other text). Method names in a key must be what `build` accepts
(`METHOD_NAME`).

Messages: every string that comes from a file (a path, a participant id, a choice, a group name)
is shown through `shown` / `quoted`, so a control or formatting character (a newline, an ANSI
escape, a bidi override) appears escaped, never raw; it cannot spoof a terminal line. Pages and
reports escape the messages again for HTML.

The statistics of the tally are in `regionharmony.study.preference`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regionharmony.errors import UserError

KEY_FORMAT = "regionharmony-user-study-key"
VOTES_FORMAT = "regionharmony-user-study-votes"
FORMAT_VERSION = 1
SEPARATOR = "\x1f"  # joins participant and group in the seed string (never typed by a user)
ORDER_SALT = "group-order"  # the seed of a participant's group order: (participant, ORDER_SALT)
MASK32 = 0xFFFFFFFF
METHOD_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")  # what `build` accepts as a name
QUOTED_LIMIT = 80  # characters of a quoted value in a message


def shown(text: object) -> str:
    """A path or name as a message shows it: as it is when every character is printable, else
    its repr() (control and formatting characters escaped, so it stays one honest line)."""
    text = str(text)
    return text if text.isprintable() else repr(text)


def quoted(value: object, limit: int = QUOTED_LIMIT) -> str:
    """A value from a file as a message quotes it: repr() (escapes control characters), cut to
    `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class VotesError(UserError, ValueError):
    """A key or votes file that cannot be used; the message names the file."""


# -- the page's shuffle, ported from templates/user_study.html ---------------------------------
def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the UTF-8 bytes of `text` (the page: `fnv1a`)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & MASK32
    return value


def group_seed(participant: str, group: str) -> int:
    """The seed of one participant's option order in one group."""
    return fnv1a32(participant + SEPARATOR + group)


def order_seed(participant: str) -> int:
    """The seed of one participant's group order."""
    return fnv1a32(participant + SEPARATOR + ORDER_SALT)


def mulberry32(seed: int):
    """The mulberry32 PRNG: a generator of floats in [0, 1), as the page's `mulberry32`."""
    state = seed & MASK32
    while True:
        state = (state + 0x6D2B79F5) & MASK32
        t = ((state ^ (state >> 15)) * (1 | state)) & MASK32
        t = ((t + (((t ^ (t >> 7)) * (61 | t)) & MASK32)) & MASK32) ^ t
        yield ((t ^ (t >> 14)) & MASK32) / 4294967296


def shuffled(items: Sequence[str], seed: int) -> list[str]:
    """Fisher-Yates with mulberry32(seed), from the last position down (the page's `shuffled`)."""
    out = list(items)
    rng = mulberry32(seed)
    for i in range(len(out) - 1, 0, -1):
        j = math.floor(next(rng) * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


# -- the key --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One image group: its opaque id, its name (relative path without extension) and options."""

    id: str
    key: str
    options: dict[str, str]  # opaque option id -> method, in the page's (canonical) order

    @property
    def subset(self) -> str:
        """The first folder of the group's name ('' when it has none), e.g. HCOCO."""
        head, sep, _ = self.key.partition("/")
        return head if sep else ""


@dataclass(frozen=True)
class StudyKey:
    """The key file: which opaque option is which method."""

    path: Path
    study_id: str
    composite: str
    methods: tuple[str, ...]  # composite first, then the order given to `build`
    groups: dict[str, Group]
    sources: dict[str, str] = field(default_factory=dict)  # method -> the folder it came from
    participant_folder: str = ""  # where `build` wrote the page


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise VotesError(f"{shown(path)}: {message}")


def load_key(path: str | Path) -> StudyKey:
    """Read and check a key file written by `user-study build`."""
    path = Path(path)
    if not path.is_file():
        raise VotesError(
            f"{shown(path)}: key file not found (written by `regionharmony user-study build`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VotesError(f"{shown(path)}: not a JSON file ({err})") from err
    _require(isinstance(data, dict) and data.get("format") == KEY_FORMAT, path, "not a study key")
    _require(
        data.get("version") == FORMAT_VERSION, path, f"key version {quoted(data.get('version'))}"
    )
    try:
        methods = tuple(data["methods"])
        bad = [m for m in methods if not (isinstance(m, str) and METHOD_NAME.match(m))]
        _require(
            not bad,
            path,
            f"method name {quoted(bad[0]) if bad else ''} is not letters, digits, _ . + - only",
        )
        _require(data["composite"] in methods, path, "the composite is not one of the methods")
        groups = {}
        for entry in data["groups"]:
            options = {o["id"]: o["method"] for o in entry["options"]}
            _require(
                sorted(options.values()) == sorted(methods),
                path,
                f"group {quoted(entry['id'])} does not list each method once",
            )
            groups[entry["id"]] = Group(entry["id"], entry["key"], options)
        return StudyKey(
            path,
            data["study_id"],
            data["composite"],
            methods,
            groups,
            data.get("sources", {}),
            data.get("participant_folder", ""),
        )
    except (KeyError, TypeError) as err:
        raise VotesError(
            f"{shown(path)}: malformed study key (missing or wrong field {err})"
        ) from err


def option_of(key: StudyKey, group: Group, method: str) -> str:
    """The opaque option id of `method` in `group`."""
    for option, name in group.options.items():
        if name == method:
            return option
    raise VotesError(f"{shown(key.path)}: group {quoted(group.key)} has no method {method!r}")


def votes_payload(
    key: StudyKey, participant: str, choices: dict[str, str | None], time: str = ""
) -> dict[str, Any]:
    """What the page exports after `participant` chose `choices` (group name -> method;
    None = skipped), visiting the groups in the page's order. For tests and dry runs."""
    by_name = {g.key: g for g in key.groups.values()}
    unknown = sorted(set(choices) - set(by_name))
    if unknown:
        raise VotesError(f"{shown(key.path)}: no group named {', '.join(map(quoted, unknown))}")
    group_order = shuffled(sorted(key.groups), order_seed(participant))
    votes = []
    for position, group_id in enumerate(group_order, start=1):
        group = key.groups[group_id]
        if group.key not in choices:
            continue
        seed = group_seed(participant, group_id)
        order = shuffled(list(group.options), seed)
        method = choices[group.key]
        choice = None if method is None else option_of(key, group, method)
        votes.append(
            {
                "group": group_id,
                "position": position,
                "seed": seed,
                "shown": order,
                "choice": choice,
                "choice_index": None if choice is None else order.index(choice) + 1,
                "time": time,
                "elapsed_ms": 0,
            }
        )
    return {
        "format": VOTES_FORMAT,
        "version": FORMAT_VERSION,
        "study_id": key.study_id,
        "participant": participant,
        "order_seed": order_seed(participant),
        "group_order": group_order,
        "started": time,
        "exported": time,
        "votes": votes,
    }


# -- votes files ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vote:
    """One answered or skipped group of one participant, options already mapped to methods."""

    participant: str
    group: str
    group_key: str
    position: int
    shown: tuple[str, ...]  # methods, in the order the participant saw them
    choice: str | None  # the chosen method; None: skipped
    time: str


@dataclass(frozen=True)
class VotesFile:
    path: Path
    participant: str
    votes: tuple[Vote, ...]


@dataclass
class LoadedVotes:
    """The accepted files and the rejected ones, each with the reason."""

    folder: Path
    files: list[VotesFile]
    rejected: list[tuple[Path, str]]

    @property
    def votes(self) -> list[Vote]:
        return [v for f in self.files for v in f.votes]

    @property
    def missing(self) -> bool:
        """The votes folder does not exist (or is not a folder)."""
        return not self.folder.is_dir()

    def rejected_rows(self) -> list[tuple[str, str]]:
        """(file, why) per rejected file, the file as messages show it (`shown`); plain text,
        to be escaped by whatever displays it."""
        return [(shown(path), message) for path, message in self.rejected]


def _parse_vote(raw: Any, participant: str, key: StudyKey, path: Path, index: int) -> Vote:
    where = f"vote {index + 1}"
    _require(isinstance(raw, dict), path, f"{where} is not an object")
    group_id = raw.get("group")
    group = key.groups.get(group_id) if isinstance(group_id, str) else None
    _require(group is not None, path, f"{where}: group {quoted(group_id)} is not in the study")
    seed = group_seed(participant, group.id)
    _require(
        raw.get("seed") == seed, path, f"{where}: seed {quoted(raw.get('seed'))}, expected {seed}"
    )
    expected = shuffled(list(group.options), seed)
    _require(
        raw.get("shown") == expected,
        path,
        f"{where}: the order shown is not the one the page derives from the participant id",
    )
    choice = raw.get("choice")
    _require(
        choice is None or (isinstance(choice, str) and choice in group.options),
        path,
        f"{where}: unknown choice {quoted(choice)}",
    )
    index = raw.get("choice_index")
    _require(
        index == (None if choice is None else expected.index(choice) + 1),
        path,
        f"{where}: choice_index {quoted(index)} does not point at the choice",
    )
    position = raw.get("position")
    _require(
        isinstance(position, int) and not isinstance(position, bool),
        path,
        f"{where}: position {quoted(position)} is not an integer",
    )
    return Vote(
        participant=participant,
        group=group.id,
        group_key=group.key,
        position=position,
        shown=tuple(group.options[o] for o in expected),
        choice=None if choice is None else group.options[choice],
        time=str(raw.get("time", "")),
    )


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def parse_votes_file(path: Path, key: StudyKey) -> VotesFile:
    """One votes file, checked against the key; VotesError naming the file if unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VotesError(f"{shown(path)}: not a JSON file ({err})") from err
    _require(isinstance(data, dict), path, "not a JSON object")
    _require(data.get("format") == VOTES_FORMAT, path, "not a votes file of a study page")
    _require(data.get("version") == FORMAT_VERSION, path, f"version {quoted(data.get('version'))}")
    study = data.get("study_id")
    _require(
        study == key.study_id,
        path,
        f"from another study ({quoted(study)}; the key {shown(key.path)} is study "
        f"{key.study_id!r})",
    )
    participant = data.get("participant")
    _require(participant is not None, path, "no participant id (`participant` missing or null)")
    _require(
        isinstance(participant, str),
        path,
        f"participant id {quoted(participant)} is a {json_type(participant)}, not a string: "
        'the page writes it as a JSON string (e.g. "p01")',
    )
    _require(
        participant.strip() == participant and participant,
        path,
        f"participant id {quoted(participant)} is empty or has surrounding spaces",
    )
    raw_votes = data.get("votes")
    _require(isinstance(raw_votes, list), path, "no `votes` list")
    votes = [_parse_vote(raw, participant, key, path, i) for i, raw in enumerate(raw_votes)]
    order = shuffled(sorted(key.groups), order_seed(participant))
    _require(
        data.get("group_order") == order,
        path,
        "the group order is not the one the page derives from the participant id",
    )
    for i, vote in enumerate(votes):
        expected = order.index(vote.group) + 1
        _require(
            vote.position == expected,
            path,
            f"vote {i + 1}: position {quoted(vote.position)}, expected {expected}",
        )
    seen: set[str] = set()
    for vote in votes:
        _require(
            vote.group not in seen, path, f"group {vote.group} ({quoted(vote.group_key)}) twice"
        )
        seen.add(vote.group)
    return VotesFile(path, participant, tuple(votes))


def load_votes(folder: str | Path, key: StudyKey) -> LoadedVotes:
    """Every `*.json` file of `folder` (recursively, in name order); bad ones are rejected."""
    folder = Path(folder)
    loaded = LoadedVotes(folder, [], [])
    if not folder.is_dir():
        return loaded
    first_file: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            parsed = parse_votes_file(path, key)
        except VotesError as err:
            loaded.rejected.append((path, str(err)))
            continue
        if parsed.participant in first_file:
            earlier = first_file[parsed.participant]
            loaded.rejected.append(
                (
                    path,
                    f"{shown(path)}: duplicate: participant {quoted(parsed.participant)} already "
                    f"voted in {shown(earlier)}; keep one file per participant",
                )
            )
            continue
        first_file[parsed.participant] = path
        loaded.files.append(parsed)
    return loaded
