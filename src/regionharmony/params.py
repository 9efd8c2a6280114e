"""params.yaml -> one `Config`: profiles, variants and `--set`, merged in one place.

The dataclass defaults (`regionharmony.config`) are the paper's recipe (Sec. IV-A). Every
other number lives in params.yaml: `profile` names a profile, `profiles.<name>` overrides the
defaults for it (`paper` is the defaults, nearly untouched; `mini` is the laptop-CPU profile), a
*variant* (`variants.<name>`: a row of Table VI / VII or a curve of Fig. 8/9) is one more layer,
and `--set SECTION.KEY=VALUE` on the command line the last one:

    dataclass defaults <- profiles[profile] <- variants[variant] <- --set

A variant is named in one of three mappings (`VARIANT_MAPPINGS`): `variants`, each trained from
scratch; `prefix_variants`, each the first part of another variant's run (`train.prefix_of`,
shared where that is exact: `train.prefix`); `studies`, this repository's own studies beyond
the paper (the paper switch of params.yaml empties it).

Every layer goes through `apply_layer`, which refuses an unknown section or key and a wrong type
with a `ConfigError` naming the file, the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from regionharmony.config import PAPER_PROFILE, Config, apply_layer, validate
from regionharmony.errors import ConfigError

VARIANT_MAPPINGS = ("variants", "prefix_variants", "studies")


def resolve_config(
    params: Mapping[str, Any],
    profile: str | None = None,
    variant: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    source: str = "params.yaml",
) -> Config:
    """defaults <- profiles[profile] <- variants[variant] <- overrides, validated.

    `params` is the content of params.yaml (`load_params`); `profile` defaults to its `profile`.

    Every profile and variant of `params` is checked too, so that a mistake anywhere in the
    file is reported now, in one line naming ``profiles.<name>`` or ``variants.<name>`` and
    the key, not when a later command or pipeline stage uses it: each profile is applied to
    the defaults and validated on its own; each other variant is applied to this profile
    (with the overrides after it, as a run of that variant would be) and validated.
    """
    profile = profile or params.get("profile") or PAPER_PROFILE
    profiles = _named_layers(params, "profiles", source)
    known = sorted({PAPER_PROFILE, *profiles})
    if profile not in known:
        raise ConfigError(
            f"{source}: unknown profile {profile!r}; choose one of {', '.join(known)}"
        )
    for name, layer in profiles.items():  # each profile on its own, so errors name it
        where = f"{source}, profiles.{name}"
        other = Config(profile=str(name))
        apply_layer(other, layer, where)
        validate(other, where)
    variants = variant_layers(params, source)
    cfg = Config(profile=profile)
    apply_layer(cfg, profiles.get(profile), f"{source}, profiles.{profile}")
    if variant is not None:
        if variant not in variants:
            allowed = f"choose one of {', '.join(variants)}" if variants else "it defines none"
            raise ConfigError(f"{source}: unknown variant {variant!r}; {allowed}")
        apply_layer(cfg, variants[variant], f"{source}, {variant_source(params, variant)}")
    apply_layer(cfg, overrides, "--set")
    validate(cfg, f"{source} with --set" if overrides else source)
    parents = _named_layers(params, "variants", source)
    for name, layer in variants.items():
        parent = layer_prefix_of(layer)
        if parent and parent not in parents:
            raise ConfigError(
                f"{source}: {variant_source(params, name)}.train.prefix_of must name a variant "
                f"of `variants`, got {parent!r}"
            )
    for name, layer in variants.items():
        if name != variant:
            where = f"{source}, {variant_source(params, name)}"
            other = Config(profile=profile)
            apply_layer(other, profiles.get(profile), f"{source}, profiles.{profile}")
            apply_layer(other, layer, where)
            apply_layer(other, overrides, "--set")
            validate(other, f"{where} with --set" if overrides else where)
    return cfg


def layer_prefix_of(layer: Mapping[str, Any] | None) -> str:
    """The `train.prefix_of` a variant's layer sets ("" where it sets none)."""
    return ((layer or {}).get("train") or {}).get("prefix_of") or ""


def variant_layers(params: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Every variant of params.yaml by name, from all of `VARIANT_MAPPINGS`; a name in two of
    them is refused."""
    out: dict[str, Any] = {}
    for key in VARIANT_MAPPINGS:
        for name, layer in _named_layers(params, key, source).items():
            if name in out:
                raise ConfigError(f"{source}: variant {name!r} is defined twice ({key} too)")
            out[name] = layer
    return out


def variant_source(params: Mapping[str, Any], name: str) -> str:
    """`<mapping>.<name>`: where params.yaml defines the variant `name`."""
    for key in VARIANT_MAPPINGS:
        if name in (params.get(key) or {}):
            return f"{key}.{name}"
    return f"variants.{name}"


def _named_layers(params: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    """`params[key]` ({name: layer}), checked to be a mapping; {} when absent."""
    layers = params.get(key) or {}
    if not isinstance(layers, Mapping):
        raise ConfigError(
            f"{source}: {key} must be a mapping of name: {{section: {{key: value}}}}, "
            f"got {type(layers).__name__}"
        )
    return layers


def parse_assignments(items: list[str]) -> dict[str, dict[str, Any]]:
    """`["train.epochs=3"]` -> {"train": {"epochs": 3}} (values parsed as YAML scalars)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not (sep and dot and section and name):
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item}: {value!r} is not a YAML value") from None
        out.setdefault(section, {})[name] = parsed
    return out


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """params.yaml as a dict; a missing file or a YAML syntax error is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameters file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: unreadable parameters file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where}: YAML syntax error: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a YAML mapping (key: value), got {type(data).__name__}")
    return data


DEFAULT_PARAMS = Path("params.yaml")


def config_from_args(args: Any) -> Config:
    """The config a command line asks for: --params (default ./params.yaml; without one, only
    the paper profile is known), --profile, --variant and --set."""
    params, source = params_from_args(args)
    return resolve_config(params, args.profile, args.variant, parse_assignments(args.set), source)


def params_from_args(args: Any) -> tuple[dict[str, Any], str]:
    """params.yaml as --params names it (default ./params.yaml, else none) and its name."""
    path = args.params
    if path is None:
        path = DEFAULT_PARAMS if DEFAULT_PARAMS.is_file() else None
    params = load_params(path) if path is not None else {}
    return params, str(path) if path is not None else "defaults"


def build_config(
    profile: str = PAPER_PROFILE,
    overrides: Mapping[str, Any] | None = None,
    variant: Mapping[str, Any] | None = None,
    params_path: str | Path | None = None,
) -> Config:
    """A profile of the repository's params.yaml with layers on top, for tests, benchmarks and
    notebooks: defaults <- profiles[profile] <- `variant` <- `overrides`.

    `params_path` defaults to the params.yaml of the source checkout this package runs from.
    """
    path = Path(params_path) if params_path else Path(__file__).resolve().parents[2] / "params.yaml"
    params = load_params(path) if path.is_file() or profile != PAPER_PROFILE else {}
    cfg = resolve_config(params, profile, source=str(path))
    apply_layer(cfg, variant, "variant")
    apply_layer(cfg, overrides, "overrides")
    return validate(cfg)
