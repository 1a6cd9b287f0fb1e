"""Load params.yaml (+ overlays), validate against the one schema, resolve a method's settings."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "params.schema.yaml"


def deep_merge(base: Mapping, over: Mapping) -> dict:
    """Overlay `over` on `base`: dicts merge key by key, everything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"params file {path} does not exist; pass an existing file (e.g. params.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _algo_key_error(err: jsonschema.ValidationError, params: Mapping) -> str | None:
    """The schema's per-algo key lists fail as `'x' is not one of [...]`; say it as the user thinks of it."""
    path = list(err.absolute_path)
    if not (err.validator == "enum" and "propertyNames" in err.absolute_schema_path and len(path) == 2
            and path[0] == "methods"):
        return None
    algo = params["methods"][path[1]].get("algo")
    takes = sorted(set(err.validator_value) - COMMON_METHOD_KEYS)
    return (f"  methods.{path[1]}: {err.instance!r} is not a parameter of algo '{algo}' "
            f"(it takes: {takes}, plus {sorted(COMMON_METHOD_KEYS)})")


# Keys every method entry may carry whatever its algo (overrides of the shared sections).
COMMON_METHOD_KEYS = frozenset({"algo", "pretrain", "augment", "positives", "seeds"})
MINED_SOURCES = ("mined", "study_m")
# Sources without an extra pair list, hence without partners for the partner switches to read.
PAIRLESS_SOURCES = ("augment", "study_s", "study_a", "study_a2", "study_m")
# The SePP partner switches (docs/science.md §1.2) and the `positives` setting that asks for each.
SWITCH_KEYS = {"multi_positive": "variant: M", "mask_partners": "mask_partners: true"}
# Which algorithms implement which switches: each algorithm class declares its SWITCHES (its constructor
# refuses any other); this copy lets params be checked without importing algorithm code, and
# tests/unit/algos/test_partner_switches.py keeps it equal to the classes' declarations.
ALGO_SWITCHES = {"simclr": frozenset({"multi_positive", "mask_partners"}),
                 "mocov2": frozenset({"multi_positive", "mask_partners"})}


def partner_switches(positives: Mapping | None) -> dict[str, bool]:
    """The partner switches a method's `positives` entry asks for, as Algorithm constructor arguments."""
    pos = positives or {}
    return {"multi_positive": pos.get("variant") == "M", "mask_partners": bool(pos.get("mask_partners", False))}


def validate(params: Mapping, source: str = "params") -> None:
    """Check params against the schema; the error names the offending key and the rule it breaks.

    Needs no algorithm code: the schema lists each algo's keys, so a stage that trains nothing (download,
    prepare, evaluation) does not import, and does not depend on, every algorithm.
    """
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            lines.append(_algo_key_error(err, params) or f"  {_key_path(err)}: {_plain_message(err)}")
        raise ConfigError(f"invalid {source}:\n" + "\n".join(lines))
    _semantic_checks(params, source)


def _plain_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return f"unknown key: {err.message} (check the spelling against {SCHEMA_PATH.name})"
    return err.message


def drop_removed_methods(params: dict) -> dict:
    """An overlay removes a method by setting it to null (`nnclr: null`); drop those entries in place."""
    methods = params.get("methods")
    if isinstance(methods, dict):
        for name in [n for n, e in methods.items() if e is None]:
            del methods[name]
    return params


def seeds_of(params: Mapping, method: str) -> list[int]:
    """A method's seeds: the global seeds, limited to the method's own `seeds` list when it has one.

    Limiting (not replacing) keeps overlays simple: an overlay that sets `seeds: [0]` runs seed 0 only,
    and cheap pipeline-coverage methods can stay at one seed while the comparisons get several.
    """
    own = params["methods"][method].get("seeds")
    return [s for s in params["seeds"] if own is None or s in own]


def _check_seeds_and_controls(params: Mapping, source: str) -> None:
    """Per-method seeds and compute-matched controls: every run a run needs must exist, for each seed."""
    methods = params["methods"]
    for name, entry in methods.items():
        if not seeds_of(params, name):
            raise ConfigError(f"invalid {source}: methods.{name}.seeds {entry['seeds']} keeps none of the global "
                              f"seeds {params['seeds']}; add one of them or remove the method")
        pos = entry.get("positives") or {}
        needs = [pos["from"]] if pos.get("from") in methods else []
        target = pos.get("match_steps")
        if target is not None:
            if pos.get("source", "augment") != "augment" or pos.get("equal_steps"):
                raise ConfigError(f"invalid {source}: methods.{name}.positives.match_steps makes a compute-matched "
                                  f"control: it needs source augment and no equal_steps")
            if target not in methods or target == name:
                raise ConfigError(f"invalid {source}: methods.{name}.positives.match_steps '{target}' is not another "
                                  f"method; choose one of {sorted(set(methods) - {name})}")
            tpos = methods[target].get("positives") or {}
            if tpos.get("match_steps") is not None:
                raise ConfigError(f"invalid {source}: methods.{name}.positives.match_steps '{target}' is itself a "
                                  f"control; name the variant it matches ('{tpos['match_steps']}')")
            if methods[target]["algo"] != entry["algo"]:
                raise ConfigError(f"invalid {source}: methods.{name} (algo {entry['algo']}) matches the steps of "
                                  f"'{target}' (algo {methods[target]['algo']}); a control must be the same algo")
            for key in ("epochs", "batch_size"):
                mine = method_settings(params, name)["pretrain"][key]
                theirs = method_settings(params, target)["pretrain"][key]
                if mine != theirs:
                    raise ConfigError(f"invalid {source}: methods.{name} has pretrain.{key} {mine} but '{target}' "
                                      f"{theirs}; a compute-matched control needs the same {key}")
            needs.append(target)
        for other in needs:
            missing = sorted(set(seeds_of(params, name)) - set(seeds_of(params, other)))
            if missing:
                raise ConfigError(f"invalid {source}: methods.{name} runs seeds {missing} that '{other}' does not "
                                  f"(it needs that run's seed); give '{other}' those seeds too")
    for section in ("semisup", "detection"):
        chosen = (params["eval"].get(section) or {}).get("methods") or []
        unknown = sorted(set(chosen) - set(methods))
        if unknown:
            raise ConfigError(f"invalid {source}: eval.{section}.methods {unknown} are not methods; "
                              f"choose among {sorted(methods)}")


def _semantic_checks(params: Mapping, source: str) -> None:
    """Names that must refer to something else in params (the schema cannot check cross-references).

    Runs after the schema check, so the sections it requires (report, eval, data) are there."""
    methods = params["methods"]
    baseline = params["report"].get("baseline")
    if baseline and baseline not in methods:
        raise ConfigError(
            f"invalid {source}: report.baseline '{baseline}' is not a method; choose one of {sorted(methods)}"
        )
    check_method_graph(methods, source)
    _check_seeds_and_controls(params, source)
    semi = params["eval"].get("semisup")
    if semi:
        have = {float(f) for f in params["data"].get("semi_fractions", [])}
        missing = [f for f in semi["fractions"] if float(f) not in have]
        if missing:
            raise ConfigError(f"invalid {source}: eval.semisup.fractions {missing} are not in data.semi_fractions "
                              f"{sorted(have)}; add them there so prepare writes those label subsets")


def check_method_graph(methods: Mapping, source: str) -> None:
    """Cross-method references: a mined source names an existing method that trains on augmented pairs."""
    for name, entry in methods.items():
        pos = entry.get("positives") or {}
        src = pos.get("source", "augment")
        if src in MINED_SOURCES:
            frm = pos.get("from")
            if frm is None:
                raise ConfigError(f"invalid {source}: methods.{name}.positives.from is required for source {src} "
                                  f"(the method whose pretrained backbone mines the pairs)")
            if frm not in methods:
                raise ConfigError(f"invalid {source}: methods.{name}.positives.from '{frm}' is not a method; "
                                  f"choose one of {sorted(methods)}")
            if (methods[frm].get("positives") or {}).get("source", "augment") != "augment":
                raise ConfigError(f"invalid {source}: methods.{name}.positives.from '{frm}' must train on "
                                  f"augmented pairs (its own positives would make the DAG circular)")
        elif "from" in pos:
            raise ConfigError(f"invalid {source}: methods.{name}.positives.from only applies to mined sources")
        asked = [k for k, on in partner_switches(pos).items() if on]
        keys = " and ".join(f"positives.{SWITCH_KEYS[k]}" for k in asked)
        if asked and src in PAIRLESS_SOURCES:
            raise ConfigError(f"invalid {source}: methods.{name}: {keys} needs an extra pair list (positives.source "
                              f"mined, oracle or random), not source {src}")
        refused = [k for k in asked if k not in ALGO_SWITCHES.get(entry["algo"], ())]
        if refused:
            asked_txt = " and ".join(f"positives.{SWITCH_KEYS[k]}" for k in refused)
            able = sorted(a for a, sw in ALGO_SWITCHES.items() if set(refused) <= sw)
            hint = f" (implemented by: {', '.join(able)})" if able else ""
            raise ConfigError(f"invalid {source}: methods.{name}: algo '{entry['algo']}' does not implement "
                              f"{asked_txt}; drop it or choose an algo that does{hint}")


def load_params(path: str | Path = "params.yaml", overlays: Iterable[str | Path] = ()) -> dict:
    params = _read_yaml(Path(path))
    names = [str(path)]
    for overlay in overlays:
        params = deep_merge(params, _read_yaml(Path(overlay)))
        names.append(str(overlay))
    drop_removed_methods(params)
    validate(params, " + ".join(names))
    return params


def method_settings(params: Mapping, method: str) -> dict:
    """The resolved settings of one method: global pretrain/augment with the method's overrides."""
    methods = params["methods"]
    if method not in methods:
        raise ConfigError(f"unknown method '{method}'; params define: {sorted(methods)}")
    entry = methods[method]
    hp = {k: v for k, v in entry.items() if k not in ("pretrain", "augment", "seeds")}
    return {
        "name": method,
        "algo": entry["algo"],
        "hp": hp,
        "pretrain": deep_merge(params["pretrain"], entry.get("pretrain", {})),
        "augment": deep_merge(params["augment"], entry.get("augment", {})),
        "backbone": dict(params["backbone"]),
    }


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
