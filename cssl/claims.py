"""The claims ledger: every inequality the book states is checked with its real numbers and recorded.

A *claim* is one checkable statement tied to the label of a ``{prf:...}`` block, for example
"Theorem 1: Err(G_f) <= (1 - sigma) + R_eps on 200 random worlds". A chapter opens a
:class:`Ledger`, calls :meth:`Ledger.check` for each claim, and ends with :meth:`Ledger.verdicts`,
whose printed table (labels and verdicts, no raw floats) sits in the chapter's one
``# NBVAL_CHECK_OUTPUT`` cell so that nbval fails when a verdict changes.

``check(label, lhs, rel, rhs)`` evaluates ``lhs rel rhs`` elementwise (one entry per world, seed or
example), raises :class:`ClaimFailed` naming the claim and its numbers when any entry fails, and
otherwise records

    label, name, kind (symbolic | exact | empirical), relation, lhs, rhs, margin, seeds, verdict

where the *margin* is the worst-case slack: ``min(rhs - lhs)`` for ``<=``/``<``, ``min(lhs - rhs)`` for
``>=``/``>``, and ``tol - max|lhs - rhs|`` for ``==``. A margin >= 0 means the claim holds.

The *verdict* says what the check establishes about the paper:

* ``"holds"``: the statement holds on these numbers;
* ``"fails as printed"``: a finding; the check asserts a counterexample to the paper's statement as
  printed (the corrected statement gets a ``"holds"`` claim of its own);
* ``"not reproduced at this scale"``: an empirical claim of the paper that the book's CPU-scale
  experiment does not show; the check asserts what was actually observed.

Those three are stated by the chapter and asserted by the check. The verdict of an *experiment* is
computed instead, never passed in: :meth:`Ledger.compare` takes per-seed values of two settings the paper
orders (``higher > lower``), forms a paired Student-t confidence interval for the mean difference and
records

* ``"reproduces"``: the interval lies above 0, so the seeds show the paper's direction;
* ``"reversed"``: the interval lies below 0, so the seeds show the opposite direction;
* ``"inconclusive"``: the interval contains 0; the seeds cannot tell the direction. This is *not*
  ``"holds"``: the paper's claim is neither confirmed nor contradicted at this scale.

``compare`` raises only for bad input; a reversed or inconclusive result is a finding and is recorded. Its
margin is the interval's lower end (negative unless the claim reproduces) and its ``extra`` holds the
effect and interval (:func:`format_effect` renders them as text).

:meth:`Ledger.check_pattern` checks a relation the paper states for several cases (steps of a table,
seeds) with the observed direction of each case pinned in the chapter: ``"holds"`` for the cases that
follow the paper, the opposite relation with ``"not reproduced at this scale"`` for the others, so that a
re-run in which any case changes direction fails instead of quietly changing its verdict. It is a
regression test of the observed directions, not an estimate of the effect: a case counts as ``"+"`` however
small its difference and however noisy the seeds; use :meth:`Ledger.compare` to estimate an effect.

Each chapter's records are written atomically to ``_build/claims/<chapter>.json`` together with a hash
of the chapter's source cells and of the ``cssl`` sources. :func:`collect` (the ledger page) reads
them and re-executes any chapter whose record is missing or stale, so the ledger is complete on a
clean build whatever order the pages are executed in.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ._io import atomic_write_json

__all__ = [
    "Claim",
    "ClaimFailed",
    "Ledger",
    "KINDS",
    "RELATIONS",
    "VERDICTS",
    "COMPUTED_VERDICTS",
    "MIN_SEEDS",
    "book_root",
    "collect",
    "format_effect",
    "paired_effect",
    "ledger_markdown",
]

KINDS = ("symbolic", "exact", "empirical")
RELATIONS = ("<=", "<", ">=", ">", "==")
#: Verdicts computed by :meth:`Ledger.compare` from a paired confidence interval (never passed in).
COMPUTED_VERDICTS = ("reproduces", "reversed", "inconclusive")
VERDICTS = ("holds", "fails as printed", "not reproduced at this scale", *COMPUTED_VERDICTS)
#: The fewest seeds :meth:`Ledger.compare` accepts.
MIN_SEEDS = 5
_OPPOSITE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_:.-]*$")
_CHAPTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
RECORD_DIR = Path("_build") / "claims"
#: A claim over thousands of cases records only its first values (and its margin over all of them).
MAX_STORED_VALUES = 50


class ClaimFailed(AssertionError):
    """A claim's inequality does not hold on the given numbers."""


@dataclass(frozen=True, repr=False)
class Claim:
    """One recorded claim (see the module docstring for the meaning of each field)."""

    chapter: str
    label: str
    name: str
    statement: str
    kind: str
    relation: str
    lhs: list
    rhs: list
    margin: float
    verdict: str
    seeds: list | None = None
    tol: float = 0.0
    n_cases: int = 1
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        margin = "inf" if abs(self.margin) >= 1e300 else f"{self.margin:.3g}"
        name = f" ({self.name})" if self.name else ""
        what = f"effect {format_effect(self)}" if "effect" in self.extra else f"margin {margin}"
        return f"claim {self.label}{name}: {self.verdict} [{self.kind}, {self.n_cases} case(s), {what}]"


def paired_effect(higher, lower, confidence: float = 0.95) -> tuple[float, float, float, float, str]:
    """The paired effect of ``higher > lower`` and its Student-t interval: ``(dbar, low, high, s_d, verdict)``.

    ``d_i = higher_i - lower_i``; ``dbar ± t_{1-alpha/2, n-1} s_d / sqrt(n)`` with ``alpha = 1 - confidence``
    (``[dbar, dbar]`` when all ``d_i`` are equal); verdict ``"reproduces"`` (low > 0), ``"reversed"``
    (high < 0) or ``"inconclusive"``. The computation behind :meth:`Ledger.compare`, which validates its
    input and records the claim; call this one to show effects that are not claims (e.g. at other
    training lengths). ``higher`` and ``lower``: equal-length 1-D arrays of at least two finite values.
    """
    from scipy import stats

    h, l_ = np.asarray(higher, dtype=float).ravel(), np.asarray(lower, dtype=float).ravel()
    if h.shape != l_.shape or h.size < 2 or not (np.isfinite(h).all() and np.isfinite(l_).all()):
        raise ValueError(f"higher and lower must be finite and of equal length >= 2, got {h.size} and {l_.size}")
    d = h - l_
    n, effect = d.size, float(np.mean(d))
    if np.all(d == d[0]):
        sd, low, high = 0.0, effect, effect
    else:
        sd = float(np.std(d, ddof=1))
        half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * sd / math.sqrt(n)
        low, high = effect - half, effect + half
    verdict = "reproduces" if low > 0 else "reversed" if high < 0 else "inconclusive"
    return effect, low, high, sd, verdict


def _fmt_fixed(x: float, decimals: int, sign: bool = False) -> str:
    x = round(float(x), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def format_effect(claim, *, scale: float = 1.0, decimals: int | None = None, describe: bool = False) -> str:
    """The effect of a :meth:`Ledger.compare` claim and its interval as text, e.g. ``+3.2 [1.1, 5.3]``.

    ``claim`` is a :class:`Claim` or its record (a dict, as :func:`collect` returns). The values are shown
    as recorded, times ``scale`` (the caller decides the units: ``scale=100`` for percentage points of an
    accuracy). ``decimals`` defaults to showing the interval's half-width to two significant digits.
    ``describe=True`` appends the interval's kind and confidence, e.g. ``(paired t, 95%)``. Raises
    ``ValueError`` for a claim that records no effect.
    """
    extra = claim.get("extra") if isinstance(claim, dict) else getattr(claim, "extra", None)
    if not extra or "effect" not in extra:
        raise ValueError("format_effect needs a claim recorded by Ledger.compare (its extra has no 'effect')")
    effect, lo, hi = (float(extra[k]) * scale for k in ("effect", "ci_low", "ci_high"))
    if decimals is None:
        width = (hi - lo) / 2 or abs(effect)
        decimals = max(0, 1 - math.floor(math.log10(width))) if width > 0 else 0
    text = f"{_fmt_fixed(effect, decimals, sign=True)} [{_fmt_fixed(lo, decimals)}, {_fmt_fixed(hi, decimals)}]"
    if describe:
        text += f" ({extra.get('interval', 'interval')}, {float(extra['confidence']) * 100:g}%)"
    return text


def _as_values(value, what: str, label: str) -> np.ndarray:
    """Numbers (scalar, sequence, array, tensor, sympy number) as a flat float64 array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"claim {label!r}: {what} must be a number or an array of numbers, "
                        f"got {type(value).__name__}") from None
    if arr.size == 0:
        raise ValueError(f"claim {label!r}: {what} is empty; give at least one value to check")
    if np.isnan(arr).any():
        raise ValueError(f"claim {label!r}: {what} contains NaN ({int(np.isnan(arr).sum())} of {arr.size}); "
                         "a NaN cannot be compared, so the claim cannot be checked; fix the computation")
    return arr


def _margins(lhs: np.ndarray, rel: str, rhs: np.ndarray, tol: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if rel in ("<=", "<"):
            return rhs - lhs
        if rel in (">=", ">"):
            return lhs - rhs
        return tol - np.abs(lhs - rhs)


def _holds(margin: np.ndarray, rel: str) -> np.ndarray:
    if rel in ("<", ">"):
        return margin > 0
    return margin >= 0


def _jsonable(x: float) -> float | str:
    """A float for JSON: infinities become the strings 'inf' / '-inf' (JSON has no such number)."""
    x = float(x)
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _short(arr: np.ndarray, k: int = 4) -> str:
    vals = ", ".join(f"{x:.6g}" for x in arr[:k])
    return f"[{vals}{', ...' if arr.size > k else ''}]" if arr.size > 1 else f"{arr[0]:.6g}"


def book_root(start: str | os.PathLike | None = None) -> Path:
    """The book's root folder: ``$CSSL_BOOK_ROOT`` or the nearest parent holding ``_toc.yml``.

    Falls back to the current folder, so the ledger also works outside the book.
    """
    env = os.environ.get("CSSL_BOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def _notebook_sources(path: Path) -> str:
    """The concatenated cell sources of a notebook (outputs and metadata do not count)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n\x00".join("".join(c.get("source", "")) for c in nb.get("cells", []))


def _package_sources() -> str:
    pkg = Path(__file__).resolve().parent
    return "\n\x00".join(p.read_text(encoding="utf-8") for p in sorted(pkg.rglob("*.py")))


def source_hash(notebook: str | os.PathLike | None) -> str:
    """SHA-256 of a notebook's cell sources and of every ``cssl`` source file.

    A record whose hash differs from the current one is stale: the chapter or the package changed.
    """
    h = hashlib.sha256(_package_sources().encode())
    if notebook is not None and Path(notebook).is_file():
        h.update(_notebook_sources(Path(notebook)).encode())
    return h.hexdigest()


class Ledger:
    """The claims of one chapter.

    Parameters
    ----------
    chapter : str
        The chapter's notebook name without extension, e.g. ``"01_setting"``; its notebook is
        ``chapters/<chapter>.ipynb`` under :func:`book_root`.
    record : bool
        Write ``_build/claims/<chapter>.json`` after every check (default True).
    """

    def __init__(self, chapter: str, *, record: bool = True, root: str | os.PathLike | None = None):
        if not isinstance(chapter, str) or not _CHAPTER.match(chapter):
            raise ValueError(f"chapter must be a non-empty name like '01_setting', got {chapter!r}")
        self.chapter = chapter
        self.root = book_root(root)
        self.notebook = self.root / "chapters" / f"{chapter}.ipynb"
        self.record = record
        self.claims: list[Claim] = []

    # ---------------------------------------------------------------- checking
    def _validate(self, label, statement: str, kind: str, name: str) -> None:
        """Refuse a bad label, statement or kind, and a (label, name) already checked in this chapter."""
        if not isinstance(label, str) or not label.strip():
            raise ValueError("claim label must be the non-empty label of a {prf:...} block, e.g. 'thm-1'")
        if not _LABEL.match(label):
            raise ValueError(f"claim label {label!r} is not a valid {{prf}} label: use letters, digits, "
                             "'-', '_', ':' or '.', starting with a letter")
        if kind not in KINDS:
            raise ValueError(f"claim {label!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError(f"claim {label!r}: give the statement being checked in words")
        if any((c.label, c.name) == (label, name) for c in self.claims):
            raise ValueError(f"claim {label!r} {name!r} was already checked in chapter {self.chapter}; "
                             "give each check of the same statement a distinct name")

    def check(self, label: str, lhs, rel: str, rhs, *, statement: str, kind: str, name: str = "",
              seeds: Sequence[int] | None = None, tol: float = 0.0, verdict: str = "holds",
              extra: dict | None = None) -> Claim:
        """Check ``lhs rel rhs`` for every entry, record the claim, and return it.

        ``lhs`` and ``rhs`` are numbers or arrays of equal length (one entry per case: world, seed,
        example) or one of them a scalar. ``rel`` is one of ``<=, <, >=, >, ==``; ``==`` means
        ``|lhs - rhs| <= tol``. ``kind`` is ``symbolic``, ``exact`` or ``empirical``; ``seeds`` lists
        the seeds of an empirical claim. Raises :class:`ClaimFailed` when any entry fails, with the
        label, the statement and the offending values; raises ``ValueError`` for NaN values, an
        unknown relation, kind or verdict, or an empty label. The verdict is one of ``"holds"``, ``"fails
        as printed"`` or ``"not reproduced at this scale"``; the verdicts of :meth:`compare` are computed and
        cannot be passed here.
        """
        self._validate(label, statement, kind, name)
        if rel not in RELATIONS:
            raise ValueError(f"claim {label!r}: unknown relation {rel!r}; use one of {', '.join(RELATIONS)}")
        if verdict not in VERDICTS:
            raise ValueError(f"claim {label!r}: unknown verdict {verdict!r}; use one of {VERDICTS}")
        if verdict in COMPUTED_VERDICTS:
            raise ValueError(f"claim {label!r}: the verdict {verdict!r} is computed from seeds by "
                             "Ledger.compare, never passed in; call compare with the per-seed values")
        if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
            raise ValueError(f"claim {label!r}: tol must be a finite number >= 0, got {tol!r}")
        if rel != "==" and tol:
            raise ValueError(f"claim {label!r}: tol only applies to '=='; an inequality is checked exactly")
        if kind == "empirical" and not seeds:
            raise ValueError(f"claim {label!r}: an empirical claim must list the seeds it was run on")
        a = _as_values(lhs, "lhs", label)
        b = _as_values(rhs, "rhs", label)
        if a.size != b.size and 1 not in (a.size, b.size):
            raise ValueError(f"claim {label!r}: lhs has {a.size} values and rhs {b.size}; "
                             "give one value per case on both sides, or a scalar on one side")
        a, b = np.broadcast_arrays(a, b)
        margin = _margins(a, rel, b, tol)
        ok = _holds(margin, rel)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            what = f"{len(bad)} of {a.size} case(s) fail" if a.size > 1 else "it fails"
            tol_txt = f" (tol {tol:g}; max |lhs - rhs| = {np.max(np.abs(a[bad] - b[bad])):.3g})" if rel == "==" else ""
            raise ClaimFailed(
                f"[{self.chapter}] claim {label}{' (' + name + ')' if name else ''} does not hold: "
                f"{statement}\n  {what}: lhs {rel} rhs{tol_txt} is false for lhs={_short(a[bad])}, "
                f"rhs={_short(b[bad])}" + (f", seeds={[list(seeds)[i] for i in bad[:4]]}"
                                            if seeds is not None and len(seeds) == a.size else ""))
        m = float(np.min(margin))
        keep = slice(0, MAX_STORED_VALUES)  # the record keeps the first values; the margin covers all
        claim = Claim(chapter=self.chapter, label=label, name=name, statement=statement.strip(), kind=kind,
                      relation=rel, lhs=[_jsonable(x) for x in a[keep]], rhs=[_jsonable(x) for x in b[keep]],
                      margin=m if math.isfinite(m) else (1e308 if m > 0 else -1e308),
                      verdict=verdict, seeds=None if seeds is None else [int(s) for s in seeds],
                      tol=float(tol), n_cases=int(a.size), extra=dict(extra or {}))
        self.claims.append(claim)
        if self.record:
            self.save()
        return claim

    def check_pattern(self, label: str, lhs, rel: str, rhs, pattern: str, *, statement: str, name: str,
                      kind: str = "empirical", seeds: Sequence[int] | None = None,
                      cases: Sequence[str] | None = None) -> list[Claim]:
        """Check a relation the paper states for several cases, pinning the cases where it was not reproduced.

        ``pattern`` has one character per case: ``"+"`` where the paper's ``lhs[i] rel rhs[i]`` was observed,
        ``"-"`` where the opposite relation (``>`` for ``<=``, ``<=`` for ``>``, ...) was observed. The
        pattern is read off a first run and written into the chapter, so a case that changes direction
        fails the check (:class:`ClaimFailed`) rather than silently changing the verdict. Records at most
        two claims under ``label``: the ``"+"`` cases with verdict ``"holds"`` and the ``"-"`` cases with
        the opposite relation and verdict ``"not reproduced at this scale"``. ``cases`` names the cases in
        the statements (default ``case 0, case 1, ...``). Returns the claims recorded.
        """
        if rel not in _OPPOSITE:
            raise ValueError(f"claim {label!r}: check_pattern needs an inequality (<, <=, >, >=), got {rel!r}")
        a, b = _as_values(lhs, "lhs", label), _as_values(rhs, "rhs", label)
        n = max(a.size, b.size)
        if a.size != b.size and 1 not in (a.size, b.size):
            raise ValueError(f"claim {label!r}: lhs has {a.size} values and rhs {b.size}; "
                             "give one value per case on both sides, or a scalar on one side")
        a, b = np.broadcast_to(a, (n,)), np.broadcast_to(b, (n,))
        if not isinstance(pattern, str) or len(pattern) != n or set(pattern) - {"+", "-"}:
            raise ValueError(f"claim {label!r}: pattern must be a string of {n} characters '+' (the paper's "
                             f"relation holds) or '-' (the opposite holds), one per case; got {pattern!r}")
        names = [f"case {i}" for i in range(n)] if cases is None else [str(c) for c in cases]
        if len(names) != n:
            raise ValueError(f"claim {label!r}: {len(names)} case names for {n} cases")
        claims_ = []
        for sign, relation, verdict in (("+", rel, "holds"), ("-", _OPPOSITE[rel], "not reproduced at this scale")):
            idx = [i for i, p in enumerate(pattern) if p == sign]
            if not idx:
                continue
            where = ", ".join(names[i] for i in idx)
            text = (f"{statement}: {rel} holds for {where}" if sign == "+" else
                    f"{statement}: the opposite ({relation}) holds for {where}, not the paper's {rel}")
            claims_.append(self.check(label, a[idx], relation, b[idx], statement=text, kind=kind,
                                      name=f"{name} ({len(idx)} of {n} {'hold' if sign == '+' else 'reversed'})",
                                      seeds=seeds,
                                      verdict=verdict))
        return claims_

    def compare(self, label: str, higher, lower, *, seeds: Sequence[int], statement: str, name: str,
                confidence: float = 0.95, kind: str = "empirical") -> Claim:
        """Estimate the paired effect of an experiment the paper orders as ``higher > lower``; compute its verdict.

        ``higher`` and ``lower`` hold one value per seed, paired by seed and in the order of ``seeds`` (for
        example the kNN accuracy of augmentation ``abcde`` and of ``abcd`` on seeds 0..4), where the paper
        says the first is larger. With the paired differences ``d_i = h_i - l_i`` (``i = 1..n``), their mean
        ``dbar`` and sample standard deviation ``s_d`` (ddof 1), the two-sided Student-t interval at level
        ``confidence = 1 - alpha`` is

            dbar ± t_{1-alpha/2, n-1} · s_d / sqrt(n)

        (``[dbar, dbar]`` when all differences are equal). The verdict is computed from it:

        * ``"reproduces"``: the lower end is > 0, the seeds show the paper's direction;
        * ``"reversed"``: the upper end is < 0, the seeds show the opposite direction;
        * ``"inconclusive"``: the interval contains 0; these seeds cannot tell the direction. This is not
          ``"holds"``: the paper's claim is neither confirmed nor contradicted at this scale.

        A reversed or inconclusive result is recorded, not raised: it is a finding. Records relation
        ``">"``, lhs = ``higher``, rhs = ``lower``, the seeds, ``n_cases = n``, margin = the interval's
        lower end (negative unless the claim reproduces) and ``extra`` = ``effect`` (dbar), ``ci_low``,
        ``ci_high``, ``confidence``, ``interval`` (``"paired t"``), ``n`` and ``sd`` (s_d). Raises
        ``ValueError`` for fewer than :data:`MIN_SEEDS` seeds, seeds that are not distinct integers, values
        that are not finite, unequal lengths, a confidence outside (0, 1), a bad label, statement or kind,
        or a (label, name) already checked.
        """
        self._validate(label, statement, kind, name)
        if not (isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
                and math.isfinite(confidence) and 0 < confidence < 1):
            raise ValueError(f"claim {label!r}: confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}")
        h, lo_vals = _as_values(higher, "higher", label), _as_values(lower, "lower", label)
        for what, arr in (("higher", h), ("lower", lo_vals)):
            if not np.isfinite(arr).all():
                raise ValueError(f"claim {label!r}: {what} contains a value that is not finite "
                                 f"({int((~np.isfinite(arr)).sum())} of {arr.size}); fix the computation")
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
            raise ValueError(f"claim {label!r}: seeds must be a sequence of distinct integers, one per value")
        seeds = list(seeds)
        n = len(seeds)
        if h.size != n or lo_vals.size != n:
            raise ValueError(f"claim {label!r}: higher has {h.size} values, lower {lo_vals.size} and seeds {n}; "
                             "give one value per seed on both sides, paired by seed")
        if n < MIN_SEEDS:
            raise ValueError(f"claim {label!r}: {n} seed(s) cannot estimate an effect; give at least "
                             f"{MIN_SEEDS} seeds")
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in seeds):
            raise ValueError(f"claim {label!r}: seeds must be integers, got {seeds!r}")
        if len(set(int(s) for s in seeds)) != n:
            raise ValueError(f"claim {label!r}: seeds must be distinct, got {seeds!r}")
        effect, ci_low, ci_high, sd, verdict = paired_effect(h, lo_vals, confidence)
        keep = slice(0, MAX_STORED_VALUES)
        claim = Claim(chapter=self.chapter, label=label, name=name, statement=statement.strip(), kind=kind,
                      relation=">", lhs=[float(x) for x in h[keep]], rhs=[float(x) for x in lo_vals[keep]],
                      margin=ci_low, verdict=verdict, seeds=[int(s) for s in seeds], n_cases=n,
                      extra={"effect": effect, "ci_low": ci_low, "ci_high": ci_high, "confidence": float(confidence),
                             "interval": "paired t", "n": n, "sd": sd})
        self.claims.append(claim)
        if self.record:
            self.save()
        return claim

    def check_identity(self, label: str, lhs, rhs, *, statement: str, name: str = "", assumptions=None) -> Claim:
        """Check a symbolic identity ``lhs == rhs`` with sympy: ``simplify(lhs - rhs)`` must be 0.

        The recorded lhs/rhs are 0 and the simplified difference (which is 0 when the claim holds).
        """
        import sympy as sp

        diff = sp.simplify(sp.sympify(lhs) - sp.sympify(rhs))
        if assumptions is not None:
            diff = sp.simplify(sp.refine(diff, assumptions))
        if diff != 0:
            raise ClaimFailed(f"[{self.chapter}] claim {label}{' (' + name + ')' if name else ''} does not "
                              f"hold: {statement}\n  sympy leaves lhs - rhs = {diff}, not 0")
        return self.check(label, 0.0, "==", 0.0, statement=statement, kind="symbolic", name=name,
                          extra={"identity": f"{sp.sstr(lhs)} == {sp.sstr(rhs)}"})

    def check_proof(self, label: str, proof, *, name: str = "", statement: str | None = None) -> Claim:
        """Record a :class:`cssl.symbolic.Proof` (sympy proved ``lhs relation rhs``); raise if it did not hold.

        The recorded lhs/rhs are 0 and 0: the evidence is the proof's method and residual, kept in
        ``extra``.
        """
        import sympy as sp

        text = statement or getattr(proof, "statement", "")
        if not hasattr(proof, "holds") or not hasattr(proof, "residual"):
            raise TypeError(f"claim {label!r}: check_proof needs a cssl.symbolic.Proof, got {type(proof).__name__}")
        if not proof.holds:
            raise ClaimFailed(f"[{self.chapter}] claim {label}{' (' + name + ')' if name else ''} does not hold: "
                              f"{text}\n  sympy could not prove it; residual {proof.residual}")
        return self.check(label, 0.0, "==", 0.0, statement=text, kind="symbolic", name=name,
                          extra={"method": proof.method, "residual": sp.sstr(proof.residual)})

    # ---------------------------------------------------------------- reporting
    def verdict_lines(self) -> list[str]:
        """The verdict table as lines: label, name, kind and verdict of each claim, no raw floats."""
        rows = [(c.label, c.name or "-", c.kind, c.verdict) for c in self.claims]
        head = ("label", "check", "kind", "verdict")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [f"Chapter {self.chapter}: {len(rows)} claim(s), all checked", fmt.format(*head),
                 fmt.format(*("-" * w for w in widths))]
        return lines + [fmt.format(*r).rstrip() for r in rows]

    def verdicts(self) -> None:
        """Print the verdict table (for the chapter's ``# NBVAL_CHECK_OUTPUT`` cell) and save the record."""
        if not self.claims:
            raise ValueError(f"chapter {self.chapter} checked no claims; every chapter checks at least one")
        if self.record:
            self.save()
        print("\n".join(self.verdict_lines()))

    def save(self) -> Path:
        """Write ``_build/claims/<chapter>.json`` atomically (records plus the source hash)."""
        path = self.root / RECORD_DIR / f"{self.chapter}.json"
        atomic_write_json(path, {"chapter": self.chapter, "source_hash": source_hash(self.notebook),
                                 "claims": [asdict(c) for c in self.claims]})
        return path


# -------------------------------------------------------------------- the ledger page
def _toc_chapters(root: Path) -> list[str]:
    """Chapter notebooks named in ``_toc.yml`` (in book order), as stems under ``chapters/``."""
    toc = (root / "_toc.yml").read_text(encoding="utf-8")
    names = re.findall(r"file:\s*chapters/([A-Za-z0-9_.-]+?)(?:\.ipynb)?\s*$", toc, flags=re.M)
    return [n for n in names if (root / "chapters" / f"{n}.ipynb").is_file()]


def _execute(notebook: Path, timeout: int) -> None:
    import subprocess

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    # The kernel's own log lines (e.g. ipykernel's transport warning) must not reach the calling
    # notebook's stderr, where the book build would treat them as an error; cell errors still raise.
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute(
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def collect(*, root: str | os.PathLike | None = None, exclude: Iterable[str] = (), rebuild_stale: bool = True,
            timeout: int = 600) -> list[dict]:
    """All recorded claims of the book's chapters, in book order.

    For each chapter notebook in ``_toc.yml`` (minus ``exclude``), reads ``_build/claims/<chapter>.json``;
    when it is missing or its source hash is stale and ``rebuild_stale`` is true, executes the chapter
    first (which rewrites the record). Raises when a chapter still has no current record.
    """
    root = book_root(root)
    out: list[dict] = []
    for chapter in _toc_chapters(root):
        if chapter in set(exclude):
            continue
        notebook = root / "chapters" / f"{chapter}.ipynb"
        path = root / RECORD_DIR / f"{chapter}.json"
        current = source_hash(notebook)

        def fresh() -> bool:
            if not path.is_file():
                return False
            return json.loads(path.read_text(encoding="utf-8")).get("source_hash") == current

        if not fresh() and rebuild_stale:
            _execute(notebook, timeout)
        if not fresh():
            raise RuntimeError(f"no current claims record for chapter {chapter} ({path}); execute "
                               f"chapters/{chapter}.ipynb first (it writes the record when it runs)")
        out.extend(json.loads(path.read_text(encoding="utf-8"))["claims"])
    return out


def _chapter_title(root: Path, chapter: str) -> str:
    """The first level-1 heading of a chapter notebook, or the chapter name."""
    path = root / "chapters" / f"{chapter}.ipynb"
    if path.is_file():
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            if cell.get("cell_type") == "markdown":
                m = re.search(r"^#\s+(.+)$", "".join(cell.get("source", "")), flags=re.M)
                if m:
                    return m.group(1).strip()
    return chapter


def ledger_markdown(records: list[dict], *, root: str | os.PathLike | None = None) -> str:
    """The ledger as MyST: per chapter a linked title, then a table with one row per claim.

    Columns: the statement checked (linked with ``{prf:ref}``), the claim in words, kind, verdict,
    margin (worst-case slack) and the number of cases with their seeds. For a claim of
    :meth:`Ledger.compare` the margin column shows the effect and its interval instead, e.g.
    ``effect +0.032 [0.011, 0.053] (paired t, 95%)``.
    """
    root = book_root(root)
    blocks: list[str] = []
    chapters = list(dict.fromkeys(r["chapter"] for r in records))
    for chapter in chapters:
        rows = [r for r in records if r["chapter"] == chapter]
        lines = [f"**{{doc}}`{_chapter_title(root, chapter)} <{chapter}>`** ({len(rows)} claims)", "",
                 "| statement | claim | kind | verdict | margin | cases |", "|---|---|---|---|---|---|"]
        for r in rows:
            cases = f"{r['n_cases']}" + (f" (seeds {', '.join(map(str, r['seeds']))})" if r.get("seeds") else "")
            margin = r["margin"]
            margin_txt = "inf" if abs(margin) >= 1e300 else f"{margin:.3g}"
            if "effect" in (r.get("extra") or {}):
                margin_txt = f"effect {format_effect(r, describe=True)}"
            stmt = r["statement"].replace("|", "\\|")
            lines.append(f"| {{prf:ref}}`{r['label']}` | {stmt} | {r['kind']} | {r['verdict']} | "
                         f"{margin_txt} | {cases} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "*No claims recorded yet.*"
