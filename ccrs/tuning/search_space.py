"""The search space of a sweep: a small YAML file, validated before anything runs.

    space = load_space("space.yaml", stage="rec")     # or None → ccrs/tuning/default_space.yaml
    space.params["rec.inner_lr"]                        # Param(kind="loguniform", low=1e-3, high=3e-2)
    space.overrides({"rec.inner_lr": 0.01})             # ["rec_meta.inner_lr=0.01"]: config overrides

Sections ``rec`` and ``dial``; a sweep of ``--stage rec`` uses ``rec``, ``dial`` uses ``dial``,
``both`` uses both. Unknown sections or keys, unknown types, empty or inverted ranges, non-positive
bounds of a log range and empty choice lists are :class:`SpaceError` naming the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SPACE = Path(__file__).with_name("default_space.yaml")

#: search key → config key it sets
CONFIG_KEYS = {
    "rec.inner_lr": "rec_meta.inner_lr",
    "rec.outer_lr": "rec_meta.outer_lr",
    "rec.n_layers": "recommender.n_layers",
    "rec.n_heads": "recommender.n_heads",
    "dial.inner_lr": "dial_meta.inner_lr",
    "dial.outer_lr": "dial_meta.outer_lr",
    "dial.n_styles": "generator.n_styles",
}
KINDS = ("loguniform", "uniform", "randint", "choice")
STAGES = {"rec": ("rec",), "dial": ("dial",), "both": ("rec", "dial")}


class SpaceError(ValueError):
    """The search-space file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Param:
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"


@dataclass(frozen=True)
class SearchSpace:
    params: dict[str, Param]
    source: str

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """Config ``key=value`` overrides for one point of the space."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise SpaceError(f"{self.source}: values for keys not in the space: {', '.join(unknown)}")
        return [f"{CONFIG_KEYS[k]}={v}" for k, v in sorted(values.items())]


def _param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict):
        raise SpaceError(f"{where}: {key}: expected a mapping like {{type: loguniform, low: .., high: ..}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise SpaceError(f"{where}: {key}.type: {kind!r} is not one of {', '.join(KINDS)}")
    allowed = {"type", "values"} if kind == "choice" else {"type", "low", "high"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise SpaceError(f"{where}: {key}: unknown field(s) {', '.join(extra)} for type {kind}")
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{where}: {key}.values: a choice needs a non-empty list, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"{where}: {key}.values: duplicate values in {values!r}")
        return Param(kind, values=tuple(values))
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except KeyError as exc:
        raise SpaceError(f"{where}: {key}: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: {key}: low/high must be numbers, got {spec.get('low')!r}, {spec.get('high')!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SpaceError(f"{where}: {key}: low/high must be finite")
    if kind == "randint":
        if low != int(low) or high != int(high):
            raise SpaceError(f"{where}: {key}: randint bounds must be integers, got {low}, {high}")
        if high < low:
            raise SpaceError(f"{where}: {key}: empty range [{int(low)}, {int(high)}]")
        return Param(kind, int(low), int(high))
    if not high > low:
        raise SpaceError(f"{where}: {key}: empty range: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"{where}: {key}: a loguniform range needs low > 0, got {low}")
    return Param(kind, low, high)


def parse_space(data: Any, stage: str, where: str = "search space") -> SearchSpace:
    if stage not in STAGES:
        raise SpaceError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: top level must be a mapping with sections rec / dial")
    unknown = sorted(set(data) - {"rec", "dial"})
    if unknown:
        raise SpaceError(f"{where}: unknown section(s) {', '.join(unknown)}; known: rec, dial")
    params: dict[str, Param] = {}
    for section, body in data.items():
        if body is None:
            continue
        if not isinstance(body, dict):
            raise SpaceError(f"{where}: section {section} must be a mapping")
        for name, spec in body.items():
            key = f"{section}.{name}"
            if key not in CONFIG_KEYS:
                known = ", ".join(k for k in CONFIG_KEYS if k.startswith(section + "."))
                raise SpaceError(f"{where}: unknown key {key}; known in {section}: {known}")
            if section in STAGES[stage]:
                params[key] = _param(key, spec, where)
    if not params:
        raise SpaceError(f"{where}: no parameter to search for stage {stage} (sections used: {', '.join(STAGES[stage])})")
    return SearchSpace(params, where)


def load_space(path: str | Path | None, stage: str) -> SearchSpace:
    path = Path(path) if path else DEFAULT_SPACE
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from None
    return parse_space(data, stage, str(path))
