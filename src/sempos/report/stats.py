"""Statistics over seeds: mean, std, Student-t confidence intervals and paired per-seed differences.

Pure functions on plain numbers (no pandas). The conventions every table and plot follows:
- std is the sample standard deviation (ddof = 1); with one value it does not exist (NaN);
- the CI is mean ± t_{(1 + level) / 2, n - 1} · std / √n, Student's t with n - 1 degrees of freedom;
  with n < 2 there is no CI: its bounds are NaN and the text says "n=1, no CI", never a made-up interval;
- a paired difference (variant − reference) is taken seed by seed over the seeds both ran, so the
  seed-to-seed variation they share (initialisation, data order, augmentation draws) cancels;
- a difference whose CI contains 0 is marked: at this seed count it is not distinguishable from no effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

from scipy.stats import t as _student_t

from ..errors import InvalidValueError

LEVEL = 0.95
ZERO_MARK = "(CI ∋ 0)"
NO_CI = "no CI"


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with df degrees of freedom (t_{0.975, 2} = 4.303)."""
    if not 0 < p < 1:
        raise InvalidValueError(f"p must lie in (0, 1), got {p}")
    if df < 1:
        raise InvalidValueError(f"Student's t needs df >= 1, got {df}")
    return float(_student_t.ppf(p, df))


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its spread: n, mean, std (NaN for n < 2) and the t CI (NaN bounds for n < 2)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    level: float = LEVEL

    @property
    def has_ci(self) -> bool:
        return self.n >= 2 and not math.isnan(self.ci_low)

    @property
    def ci_contains_zero(self) -> bool | None:
        """True when the CI includes 0 (no distinguishable effect), None when there is no CI."""
        if not self.has_ci:
            return None
        return self.ci_low <= 0.0 <= self.ci_high

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2 if self.has_ci else math.nan

    def as_dict(self, prefix: str = "") -> dict:
        out = {"n": self.n, "mean": self.mean, "std": self.std, "ci_low": self.ci_low, "ci_high": self.ci_high}
        return {f"{prefix}{k}": v for k, v in out.items()}


NAN = math.nan
EMPTY = Estimate(0, NAN, NAN, NAN, NAN)


def _finite(values: Iterable[float]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        v = float(v)
        if not math.isnan(v):
            out.append(v)
    return out


def estimate(values: Iterable[float], level: float = LEVEL) -> Estimate:
    """Mean, sample std and the Student-t CI of the values (NaN/None entries are ignored)."""
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Estimate(0, NAN, NAN, NAN, NAN, level)
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(1, mean, NAN, NAN, NAN, level)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile((1 + level) / 2, n - 1) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half, level)


def paired_differences(variant: Mapping[int, float], reference: Mapping[int, float]) -> dict[int, float]:
    """{seed: variant − reference} over the seeds where both have a value."""
    out = {}
    for seed in sorted(set(variant) & set(reference)):
        a, b = variant[seed], reference[seed]
        if a is None or b is None or math.isnan(float(a)) or math.isnan(float(b)):
            continue
        out[seed] = float(a) - float(b)
    return out


def paired(variant: Mapping[int, float], reference: Mapping[int, float], level: float = LEVEL) -> Estimate:
    """The paired per-seed difference variant − reference: its mean, std and t CI over the common seeds."""
    return estimate(paired_differences(variant, reference).values(), level)


# --- text (Markdown / LaTeX only; CSV files keep the numbers) ------------------------------------------

def fmt_estimate(e: Estimate, digits: int = 2) -> str:
    """'72.00 ± 2.83 [65.0, 79.0]'; one seed: '66.00 (n=1, no CI)'; no value: '–'."""
    if e.n == 0:
        return "–"
    if not e.has_ci:
        return f"{e.mean:.{digits}f} (n={e.n}, {NO_CI})"
    return f"{e.mean:.{digits}f} ± {e.std:.{digits}f} [{e.ci_low:.{digits - 1}f}, {e.ci_high:.{digits - 1}f}]"


def fmt_delta(e: Estimate, digits: int = 2) -> str:
    """'+3.90 [+1.17, +6.63]', '+0.20 [−1.10, +1.50] (CI ∋ 0)', one seed: '+0.28 (n=1, no CI)'."""
    if e.n == 0:
        return "–"
    if not e.has_ci:
        return f"{e.mean:+.{digits}f} (n={e.n}, {NO_CI})"
    text = f"{e.mean:+.{digits}f} [{e.ci_low:+.{digits}f}, {e.ci_high:+.{digits}f}]"
    return f"{text} {ZERO_MARK}" if e.ci_contains_zero else text
