"""The claims ledger: every statement the book checks is recorded with a verdict computed from its check.

A *claim* is one checkable statement tied to the label of a ``{prf:...}`` box, for example
"Theorem 1: Err(G_f) <= (1 - sigma) + R_eps on 200 random worlds". A chapter opens a
:class:`Ledger`, records each claim, and ends with :meth:`Ledger.verdicts`, whose printed table (box
number and title, check, verdict, margin, sensitivity) sits in the chapter's one ``# NBVAL_CHECK_OUTPUT``
cell so that nbval fails when a verdict changes.

``check(label, lhs, rel, rhs)`` evaluates ``lhs rel rhs`` elementwise (one entry per world, seed or
example), raises :class:`ClaimFailed` naming the claim and its numbers when any entry fails, and
otherwise records

    label, name, kind (symbolic | exact | empirical), relation, lhs, rhs, margin, seeds, verdict, box,
    sensitivity

where the *margin* is the worst-case slack: ``min(rhs - lhs)`` for ``<=``/``<``, ``min(lhs - rhs)`` for
``>=``/``>``, and ``tol - max|lhs - rhs|`` for ``==``.

**Verdicts are computed, never passed in.** The ledger decides each claim's verdict from how it was
checked and from the statement's box in the book (:func:`book_boxes`):

* ``"fails as printed"``: recorded by :meth:`Ledger.refute`, which checks the *negation* of the
  paper's printed relation and must name the box of the corrected statement;
* ``"true but vacuous"``: the check holds and ``floor=`` names a recorded claim that holds and shows the
  bound cannot be informative (a proved floor, e.g. "the right-hand side is >= 1 for every encoder");
* ``"open"``: an ``exact`` check (worlds, grids, searches) of a theorem, lemma, proposition or corollary
  that the book does not prove (no ``{prf:proof}`` follows its box): no counterexample in
  ``tries`` cases, never "holds";
* ``"holds"``: every other check that passed: a statement the book proves, checked on its cases; a
  sympy identity or proof; an observation, example or definition checked on all its cases;
* ``"regression test"``: a check that cannot fail (``regression=`` gives the reason); it is shown but left
  out of the verdict counts;
* ``"reproduces"`` / ``"reversed"`` / ``"inconclusive"``: :meth:`Ledger.compare`, from a paired
  Student-t interval over >= 5 seeds (see :func:`paired_effect`).

**Every check is shown able to fail.** Each inequality claim also records its *sensitivity*: the same
check against the bound moved 10 % of its size towards the other side (``b -/+ 0.1 |b|``; where ``b = 0``,
see below), or against ``sharper=`` (a proposed sharper bound) when given, and whether it then
fails; and whether it still passes against the bound 10 times tighter (``b/10`` for a positive upper
bound, ``10 b`` for a positive lower bound): then it is shown as "loose by >= 10x". A bound of 0 has no
size: a case with ``b = 0`` moves by the largest ``|b|`` of the claim, and where every bound is 0 (a
sign) by the largest ``|lhs|``, so a sign check fails against the tighter bound exactly when some case
is within 10 % of the largest one of being 0 (a single case never is). An existence claim ("there is
a case with ``lhs rel rhs``", a counterexample to a statement that is not the paper's) is no bound:
:meth:`Ledger.witness` shows it able to fail by a control case, where the contradicted statement holds
and the same relation must be false. Nor is an observation (how trained encoders or a printed table came
out, read against a threshold the book chose): :meth:`Ledger.observe` shows it able to fail by control
runs without the observed effect, on which the same relation must be false. A check whose verdict is
"true but vacuous" passes a tighter bound because it is vacuous (its floor proves it).
:func:`sensitivity_summary` therefore reports the share of *bound checks* (holds or open) that fail at
10 % tighter, and counts witnesses, observations, vacuous claims and experiments apart, with the earlier
all-inequality share beside them. An identity records whether a perturbed right-hand side
(``rhs + |rhs|/10``, ``rhs + 1/10`` when ``rhs`` is 0; for sympy, ``rhs (1 + 1/10)`` or ``rhs + 1/10``)
is rejected.

Each chapter's records are written atomically to ``_build/claims/<chapter>.json`` together with a hash
of the chapter's source cells and of the ``cssl`` modules it loaded (listed in the record). :func:`collect` (the ledger page) reads
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
    "Box",
    "Claim",
    "ClaimFailed",
    "Ledger",
    "KINDS",
    "RELATIONS",
    "VERDICTS",
    "COMPUTED_VERDICTS",
    "COUNTED_VERDICTS",
    "MIN_SEEDS",
    "book_boxes",
    "book_root",
    "collect",
    "format_effect",
    "format_margin",
    "paired_effect",
    "how_checked",
    "ledger_markdown",
    "sensitivity_text",
    "sensitivity_summary",
    "sensitivity_markdown",
    "vacuous_markdown",
    "witness_markdown",
    "exception_reason",
    "result_status",
    "loaded_modules",
    "source_hash",
    "toc_files",
    "STATUSES",
]

KINDS = ("symbolic", "exact", "empirical")
RELATIONS = ("<=", "<", ">=", ">", "==")
#: Verdicts computed by :meth:`Ledger.compare` from a paired confidence interval.
COMPUTED_VERDICTS = ("reproduces", "reversed", "inconclusive")
#: Every verdict the ledger computes (see the module docstring for how).
VERDICTS = ("holds", "fails as printed", "true but vacuous", "open", "regression test",
            *COMPUTED_VERDICTS)
#: The verdicts that count as findings about a statement (a regression test does not).
COUNTED_VERDICTS = tuple(v for v in VERDICTS if v != "regression test")
#: Box types whose statements are universal: without a proof in the book their checks are "open". (A
#: conjecture of the paper is an empirical claim: the experiments decide it with :meth:`Ledger.compare`,
#: and its exact checks are about the finite data it names, e.g. the printed table.)
UNIVERSAL_BOXES = ("theorem", "lemma", "proposition", "corollary")
#: The fewest seeds :meth:`Ledger.compare` accepts.
MIN_SEEDS = 5
#: The share of its size by which a bound is moved to show that a check can fail.
TIGHTEN = 0.1
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
    box: dict | None = None
    sensitivity: dict | None = None

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
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
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


def _package_sources(modules: Sequence[str] | None = None) -> str:
    """The ``cssl`` sources: every ``.py`` file, or only ``modules`` (paths relative to the package)."""
    pkg = Path(__file__).resolve().parent
    files = sorted(pkg.rglob("*.py")) if modules is None else [pkg / m for m in sorted(modules)]
    return "\n\x00".join((f"{p.relative_to(pkg)}\n" + p.read_text(encoding="utf-8")) if p.is_file()
                         else f"{p.relative_to(pkg)}\n<missing>" for p in files)


def loaded_modules() -> list[str]:
    """The ``cssl`` source files loaded in this process (paths relative to the package), sorted."""
    import sys

    pkg = Path(__file__).resolve().parent
    out = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "cssl" or name.startswith("cssl.")) and path:
            try:
                out.add(str(Path(path).resolve().relative_to(pkg)))
            except ValueError:
                continue
    return sorted(out)


def source_hash(notebook: str | os.PathLike | None, modules: Sequence[str] | None = None) -> str:
    """SHA-256 of a notebook's cell sources and of the ``cssl`` sources it used.

    ``modules`` lists the package files the chapter loaded (:func:`loaded_modules`, recorded with the
    claims); ``None`` hashes every ``cssl`` source file. A record whose hash differs from the current
    one is stale: the chapter or a module it uses changed (an edit of a module it does not load, e.g.
    a widget module, leaves it current).
    """
    h = hashlib.sha256(_package_sources(modules).encode())
    if notebook is not None and Path(notebook).is_file():
        h.update(_notebook_sources(Path(notebook)).encode())
    return h.hexdigest()


# -------------------------------------------------------------------- the statements' boxes
@dataclass(frozen=True)
class Box:
    """A ``{prf:...}`` box of the book: its label, type, title, number and whether a proof follows it.

    ``number`` is what Sphinx prints, e.g. ``"Theorem 3.3"``: the chapter's number (its place among the
    chapters of the numbered parts of ``_toc.yml``) and the box's place among the boxes of its type in
    that chapter (sphinx-proof numbers each type separately per chapter); ``"Theorem"`` for a box marked
    ``:nonumber:`` or outside a numbered part. ``proved`` is true when the next ``{prf:...}`` directive
    after the box is a ``{prf:proof}``.
    """

    label: str
    type: str
    title: str
    number: str
    chapter: str
    proved: bool

    @property
    def heading(self) -> str:
        """``"Theorem 3.3 (Theorem 1 of the paper)"``, the way the book prints the box."""
        return f"{self.number} ({self.title})" if self.title else self.number


_DIRECTIVE = re.compile(r"^[ \t]*(`{3,}|:{3,})\{prf:([a-z]+)\}[ \t]*(.*?)[ \t]*$", flags=re.M)


def toc_files(root: str | os.PathLike | None = None) -> list[tuple[str, bool]]:
    """Every page file of ``_toc.yml`` in book order (as written there, e.g. ``"chapters/01_setting"``),
    with whether its part is numbered; the root page is not included. Empty without a ``_toc.yml``.

    The one reader of the table of contents: the boxes' numbering, :func:`collect`, the site and book
    tests, the page and chapter benchmarks, ``tools/run_notebooks.py`` and ``tools/build_pdf.py`` all
    take the book's pages from it.
    """
    import yaml

    root = book_root(root)
    if not (root / "_toc.yml").is_file():
        return []
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")) or {}
    out: list[tuple[str, bool]] = []

    def walk(entries, numbered):
        for entry in entries or []:
            if isinstance(entry, dict) and "file" in entry:
                out.append((re.sub(r"\.(ipynb|md)$", "", str(entry["file"])), numbered))
                walk(entry.get("sections"), numbered)

    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"), bool(part.get("numbered")))
    walk(toc.get("chapters"), bool(toc.get("numbered")))
    return out


def _markdown_text(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", [])
                         if c.get("cell_type") == "markdown")
    return path.read_text(encoding="utf-8")


def _parse_boxes(text: str, chapter: str, number: int | None) -> list[Box]:
    directives = list(_DIRECTIVE.finditer(text))
    counters: dict[str, int] = {}
    boxes: list[Box] = []
    for i, m in enumerate(directives):
        kind = m.group(2)
        if kind == "proof":
            continue
        options = text[m.end():m.end() + 400].split("\n")[1:6]
        label = next((o.split(":label:", 1)[1].strip() for o in options if ":label:" in o), None)
        nonumber = any(":nonumber:" in o for o in options)
        name = kind.capitalize()
        if number is not None and not nonumber:
            counters[kind] = counters.get(kind, 0) + 1
            name = f"{name} {number}.{counters[kind]}"
        proved = i + 1 < len(directives) and directives[i + 1].group(2) == "proof"
        if label:
            boxes.append(Box(label=label, type=kind, title=m.group(3), number=name, chapter=chapter,
                             proved=proved))
    return boxes


_BOX_CACHE: dict = {}


def book_boxes(root: str | os.PathLike | None = None) -> dict[str, Box]:
    """Every labelled ``{prf:...}`` box of the book, by label (see :class:`Box` for the numbering).

    Reads the chapters named in ``_toc.yml`` (notebooks' markdown cells and ``.md`` pages); cached
    until a chapter file changes. Empty when the folder has no ``_toc.yml``.
    """
    root = book_root(root)
    if not (root / "_toc.yml").is_file():
        return {}
    files = []
    for entry, numbered in toc_files(root):
        path = next((p for p in (root / f"{entry}.ipynb", root / f"{entry}.md", root / entry)
                     if p.is_file()), None)
        if path is not None:
            files.append((path, numbered))
    key = (str(root), tuple((str(p), p.stat().st_mtime_ns, n) for p, n in files))
    if key not in _BOX_CACHE:
        boxes: dict[str, Box] = {}
        chapter_number = 0
        for path, numbered in files:
            chapter_number += numbered
            for box in _parse_boxes(_markdown_text(path), path.stem,
                                    chapter_number if numbered else None):
                boxes.setdefault(box.label, box)
        _BOX_CACHE.clear()
        _BOX_CACHE[key] = boxes
    return _BOX_CACHE[key]


# -------------------------------------------------------------------- sensitivity
def _tightened(a: np.ndarray, rel: str, b: np.ndarray, share: float, factor: bool) -> np.ndarray:
    """The bound ``b`` moved towards ``a``'s side: by ``share`` of its size, or ``factor``-fold (10x)."""
    finite = np.abs(b[np.isfinite(b)])
    scale = finite.max() if finite.size and finite.max() > 0 else np.abs(a[np.isfinite(a)]).max(initial=0.0)
    size = np.where(b != 0, np.abs(b), scale)
    upper = rel in ("<=", "<")
    if not factor:
        return b - share * size if upper else b + share * size
    # ten times tighter: b/10 for a positive upper bound, 10 b for a negative one; the mirror for lower
    step = np.where(b > 0, 0.9, np.where(b < 0, 9.0, 0.9)) if upper else \
        np.where(b > 0, 9.0, np.where(b < 0, 0.9, 0.9))
    return b - step * size if upper else b + step * size


def _inequality_sensitivity(a: np.ndarray, rel: str, b: np.ndarray, sharper) -> dict:
    finite = np.isfinite(b) & np.isfinite(a)  # an infinite bound stays infinite when moved
    with np.errstate(invalid="ignore", over="ignore"):
        ten = _tightened(a, rel, b, TIGHTEN, False)
        fails10 = bool(not (_holds(_margins(a, rel, ten, 0.0), rel) | ~finite).all())
        tenfold = _tightened(a, rel, b, TIGHTEN, True)
        loose = bool((_holds(_margins(a, rel, tenfold, 0.0), rel) | ~finite).all())
    out = {"test": "bound moved 10%", "fails": fails10, "fails_10pct": fails10, "loose_10x": loose}
    if sharper is not None:
        s = np.broadcast_to(np.asarray(sharper, dtype=float).reshape(-1), a.shape) \
            if np.size(sharper) in (1, a.size) else None
        if s is None:
            raise ValueError(f"sharper must be a scalar or one value per case ({a.size}), "
                             f"got {np.size(sharper)} values")
        fails = bool(not _holds(_margins(a, rel, s, 0.0), rel).all())
        out.update(test="sharper bound", fails=fails, fails_sharper=fails)
    return out


def _identity_sensitivity(a: np.ndarray, b: np.ndarray, tol: float) -> dict:
    delta = np.where(b != 0, 0.1 * np.abs(b), 0.1)
    rejected = bool((np.abs(a - (b + delta)) > tol).any())
    return {"test": "perturbed rhs", "fails": rejected, "perturbed_rejected": rejected}


def sensitivity_text(claim) -> str:
    """The sensitivity of a claim in words: ``fails at -10%``, ``loose >= 10x``, ``rejects rhs+10%``..."""
    sens = claim.get("sensitivity") if isinstance(claim, dict) else getattr(claim, "sensitivity", None)
    verdict = claim.get("verdict") if isinstance(claim, dict) else getattr(claim, "verdict", "")
    if not sens:
        return "-"
    if sens["test"] == "perturbed rhs":
        return "rejects perturbed rhs" if sens["fails"] else "ACCEPTS perturbed rhs"
    if sens["test"] == "symbolic proof":
        return "sympy proof"
    if sens["test"] == "control rejected":
        return f"{sens.get('group', 'witness')}; control rejected"
    if verdict == "fails as printed":
        return "counterexample"
    if sens["test"] == "bound 0":
        return "sign only (bound 0)"
    if sens.get("loose_10x"):
        return "loose by >= 10x"
    if sens["test"] == "sharper bound":
        return "fails at sharper bound" if sens["fails"] else "passes at sharper bound"
    return "fails at 10% tighter" if sens["fails"] else "passes at 10% tighter"


_BOUND_TESTS = ("bound moved 10%", "sharper bound", "bound 0")


def sensitivity_summary(records: Iterable) -> dict:
    """How many checks are shown able to fail, by what a check is.

    The claims fall into groups that are counted apart, because the 10 % test means something only for
    a bound:

    * *bound checks* (``n``, ``fail_10pct``, ``share``, ``loose_10x``, ``exceptions``): inequality claims
      whose verdict is "holds" or "open", a universally quantified bound checked on its cases (trained
      encoders among them); an exception is one whose check still passes against the 10 % tighter bound
      (or its sharper bound). A floor claim (the proof that another bound is vacuous) is a bound check
      like any other;
    * ``witnesses``: claims of :meth:`Ledger.witness`, "there is a case with lhs rel rhs": a wide margin
      is what a counterexample should have, so the 10 % test is the wrong test; each is shown able to
      fail by its control case, on which the same relation is false (recorded with it);
    * ``observations``: claims of :meth:`Ledger.observe`, how measured runs or printed tables came out,
      read against a threshold the book chose (not a bound); each is shown able to fail by its control
      runs, on which the same relation is false;
    * ``vacuous``: inequality claims whose verdict is "true but vacuous": they pass a 10 % tighter bound
      *because* they are vacuous, which their floor claim proves (``floor`` in each record's extra);
    * ``experiments``: :meth:`Ledger.compare` claims, whose verdict is a computed outcome (counts by
      verdict), not a bound;
    * ``all_inequality``: the earlier measure over every inequality claim that holds, is open or
      vacuous, witnesses and observations included (each with its own 10 % test), so that nothing is
      hidden: ``{"n", "fail_10pct", "share"}``.

    Refutations (counterexamples to the printed statement), identities, sympy proofs and regression
    tests are in none of the groups.
    """
    rows, vacuous, old = [], [], []
    controlled: dict[str, list] = {"witness": [], "observation": []}
    experiments: dict[str, int] = {}
    for r in records:
        r = r if isinstance(r, dict) else asdict(r)
        sens = r.get("sensitivity") or {}
        test = sens.get("test")
        if r["verdict"] in COMPUTED_VERDICTS:
            experiments[r["verdict"]] = experiments.get(r["verdict"], 0) + 1
        elif test == "control rejected":
            controlled[sens.get("group", "witness")].append(r)
            old.append(bool(sens.get("fails_10pct")))
        elif test in _BOUND_TESTS and r["verdict"] == "true but vacuous":
            vacuous.append(r)
            old.append(bool(sens["fails"]))
        elif test in _BOUND_TESTS and r["verdict"] in ("holds", "open"):
            rows.append(r)
            old.append(bool(sens["fails"]))
    fails = [r for r in rows if r["sensitivity"]["fails"]]
    return {"n": len(rows), "fail_10pct": len(fails), "share": len(fails) / len(rows) if rows else 1.0,
            "loose_10x": [r for r in rows if r["sensitivity"].get("loose_10x")],
            "exceptions": [r for r in rows if not r["sensitivity"]["fails"]],
            "witnesses": controlled["witness"], "observations": controlled["observation"],
            "vacuous": vacuous, "experiments": experiments,
            "all_inequality": {"n": len(old), "fail_10pct": sum(old),
                               "share": sum(old) / len(old) if old else 1.0}}


def exception_reason(record) -> str:
    """Why an inequality claim still passes against a tighter bound: its ``loose`` reason, or the rule."""
    r = record if isinstance(record, dict) else asdict(record)
    extra = r.get("extra") or {}
    if extra.get("loose"):
        return extra["loose"]
    if r["verdict"] == "true but vacuous":
        return "vacuous: its floor claim puts the bound far above the quantity"
    if (r.get("sensitivity") or {}).get("test") == "bound 0":
        return "a sign: the bound 0 has no size to move, and no sharper bound was proposed"
    return "no reason recorded"


def _record_box(r: dict, boxes: dict) -> dict | None:
    """The box a claim record checks: the one recorded with it, else the book's box of its label."""
    return r.get("box") or (asdict(boxes[r["label"]]) if r["label"] in boxes else None)


def _where(r: dict, boxes: dict) -> str:
    """A link to the box of a claim record, shown by its number (the label when it has no box)."""
    box = _record_box(r, boxes)
    return f"{{prf:ref}}`{box['number']} <{r['label']}>`" if box else f"{{prf:ref}}`{r['label']}`"


def sensitivity_markdown(records: list[dict], *, root: str | os.PathLike | None = None) -> str:
    """The exceptions of :func:`sensitivity_summary` as a MyST table: box, check, verdict, test, reason."""
    boxes = book_boxes(book_root(root))
    summary = sensitivity_summary(records)
    lines = ["| statement | check | verdict | against a tighter bound | why |", "|---|---|---|---|---|"]
    for r in summary["exceptions"]:
        lines.append(f"| {_where(r, boxes)} | {_md_cell(r['name'] or '-')} | {r['verdict']} | "
                     f"{sensitivity_text(r)} | {_md_cell(exception_reason(r))} |")
    return "\n".join(lines) if summary["exceptions"] else "*Every bound check fails against a tighter bound.*"




def witness_markdown(records: list[dict], *, root: str | os.PathLike | None = None,
                     group: str = "witnesses") -> str:
    """The witnesses (or, with ``group="observations"``, the observations) of
    :func:`sensitivity_summary` as a MyST table: box, the claim in words, its relation and margin, and
    the control case on which the same relation is false (its margin is negative)."""
    if group not in ("witnesses", "observations"):
        raise ValueError(f"group must be 'witnesses' or 'observations', got {group!r}")
    boxes = book_boxes(book_root(root))
    rows = sensitivity_summary(records)[group]
    head = "witness" if group == "witnesses" else "observation"
    lines = [f"| statement | {head} | relation; margin | control, rejected (its margin) |",
             "|---|---|---|---|"]
    for r in rows:
        extra = r.get("extra") or {}
        lines.append(f"| {_where(r, boxes)} | {_breakable(r['statement'])} | "
                     f"lhs {_md_cell(r['relation'])} rhs; {format_margin(r['margin'])} | "
                     f"{_breakable(extra.get('control', '-'))} "
                     f"({format_margin(extra['control_margin'])}) |")
    return "\n".join(lines) if rows else f"*No {group} recorded.*"


def vacuous_markdown(records: list[dict], *, root: str | os.PathLike | None = None) -> str:
    """The vacuous inequality claims of :func:`sensitivity_summary` as a MyST table: box, check and the
    floor claim that proves the bound cannot be informative."""
    boxes = book_boxes(book_root(root))
    rows = sensitivity_summary(records)["vacuous"]
    lines = ["| statement | check | floor (a claim that holds) |", "|---|---|---|"]
    for r in rows:
        floor = (r.get("extra") or {}).get("floor") or {}
        fbox = boxes.get(floor.get("label", ""))
        ref = (f"{{prf:ref}}`{fbox.number if fbox else floor.get('label')} <{floor.get('label')}>`"
               if floor else "-")
        lines.append(f"| {_where(r, boxes)} | {_md_cell(r['name'] or '-')} | {ref}: "
                     f"{_breakable(floor.get('name', ''))} |")
    return "\n".join(lines) if rows else "*No vacuous claims recorded.*"


def format_margin(margin: float) -> str:
    """A margin for tables: two significant digits, ``0`` below 1e-9 in size, ``inf`` for infinities."""
    if isinstance(margin, (bool, str)) or not isinstance(margin, (int, float, np.floating, np.integer)):
        raise TypeError(f"margin must be a real number, got {type(margin).__name__} {margin!r}")
    margin = float(margin)
    if math.isnan(margin):
        raise ValueError("margin is NaN: the check that computed it compared a NaN; fix the quantity first")
    if abs(margin) >= 1e300:
        return "inf" if margin > 0 else "-inf"
    if abs(margin) < 1e-9:
        return "0"
    return f"{margin:.2g}"


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

    def _box(self, label: str) -> Box | None:
        """The box of ``label`` in the book; None when the book's chapters are not there (outside the book).

        Raises when the chapter's notebook exists but no chapter of the book has a box with this label.
        """
        boxes = book_boxes(self.root)
        if label in boxes:
            return boxes[label]
        if self.notebook.is_file() and boxes:
            raise ValueError(f"claim {label!r}: no {{prf:...}} box of the book has this label; "
                             "a claim must check a statement the book states in a box")
        return None

    def _verdict(self, label: str, kind: str, box: Box | None, *, role: str, floor) -> tuple[str, dict]:
        """The computed verdict of a check that passed, and what it rests on (recorded in ``extra``)."""
        if role == "regression":
            return "regression test", {}
        if role == "refutation":
            return "fails as printed", {}
        if role == "witness":
            return "holds", {}
        if floor is not None:
            return "true but vacuous", {}
        if (kind == "exact" and box is not None and box.type in UNIVERSAL_BOXES
                and not box.proved):
            return "open", {"reason": f"{box.number} has no proof in the book; a check on cases"}
        return "holds", {}

    def _floor(self, label: str, floor) -> dict | None:
        if floor is None:
            return None
        if isinstance(floor, Claim):
            found = floor if floor in self.claims else None
        elif isinstance(floor, tuple) and len(floor) == 2:
            found = next((c for c in self.claims if (c.label, c.name) == floor), None)
        else:
            raise TypeError(f"claim {label!r}: floor must be a recorded Claim or a (label, name) pair")
        if found is None:
            raise ValueError(f"claim {label!r}: the floor {floor!r} is not a claim of this chapter; "
                             "check the floor first (it is a claim of its own)")
        if found.verdict != "holds":
            raise ValueError(f"claim {label!r}: the floor {found.label} ({found.name}) has verdict "
                             f"{found.verdict!r}; a floor must be a claim that holds")
        return {"label": found.label, "name": found.name, "statement": found.statement}

    def check(self, label: str, lhs, rel: str, rhs, *, statement: str, kind: str, name: str = "",
              seeds: Sequence[int] | None = None, tol: float = 0.0, extra: dict | None = None,
              floor=None, sharper=None, tries: int | None = None, regression: str | None = None,
              loose: str | None = None, _role: str = "statement", _corrected: str | None = None,
              _sensitivity: dict | None = None) -> Claim:
        """Check ``lhs rel rhs`` for every entry, record the claim with its computed verdict, return it.

        ``lhs`` and ``rhs`` are numbers or arrays of equal length (one entry per case: world, seed,
        example) or one of them a scalar. ``rel`` is one of ``<=, <, >=, >, ==``; ``==`` means
        ``|lhs - rhs| <= tol``. ``kind`` is ``symbolic``, ``exact`` or ``empirical``; ``seeds`` lists
        the seeds of an empirical claim. The verdict is computed (module docstring): ``floor`` (a recorded
        :class:`Claim`, or its ``(label, name)``) that holds and shows the bound uninformative makes it
        ``"true but vacuous"``; an exact check of an unproved theorem is ``"open"`` after ``tries`` cases
        (default: the number of cases); ``regression`` (the reason a check cannot fail) makes it a
        ``"regression test"``. ``sharper`` is a proposed sharper bound (scalar or one per case) used for
        the sensitivity instead of the 10 % move; ``loose`` says why a check that still passes against
        the tighter bound cannot be tighter (shown on the ledger page). Raises :class:`ClaimFailed` when any entry fails, with
        the label, the statement and the offending values; raises ``ValueError`` for NaN values, an
        unknown relation or kind, an empty label, a label with no box in the book, or a floor that is
        not a holding claim of this chapter.
        """
        self._validate(label, statement, kind, name)
        if rel not in RELATIONS:
            raise ValueError(f"claim {label!r}: unknown relation {rel!r}; use one of {', '.join(RELATIONS)}")
        if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
            raise ValueError(f"claim {label!r}: tol must be a finite number >= 0, got {tol!r}")
        if rel != "==" and tol:
            raise ValueError(f"claim {label!r}: tol only applies to '=='; an inequality is checked exactly")
        if kind == "empirical" and not seeds:
            raise ValueError(f"claim {label!r}: an empirical claim must list the seeds it was run on")
        if regression is not None and (not isinstance(regression, str) or not regression.strip()):
            raise ValueError(f"claim {label!r}: regression must say why the check cannot fail")
        if sharper is not None and rel == "==":
            raise ValueError(f"claim {label!r}: sharper applies to an inequality, not to '=='")
        if tries is not None and (not isinstance(tries, (int, np.integer)) or tries < 1):
            raise ValueError(f"claim {label!r}: tries must be a positive integer, got {tries!r}")
        box = self._box(label)
        floor_info = self._floor(label, floor)
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
        if _sensitivity is not None:
            sens = _sensitivity
        elif rel == "==":
            sens = _identity_sensitivity(a, b, tol)
        else:
            sens = _inequality_sensitivity(a, rel, b, sharper)
        verdict, why = self._verdict(label, kind, box, role=_role if regression is None else "regression",
                                     floor=floor_info)
        info = dict(extra or {}) | why
        if floor_info is not None:
            info["floor"] = floor_info
        if _corrected is not None:
            info["corrected"] = _corrected
        if regression is not None:
            info["regression"] = regression.strip()
        if loose is not None:
            if not isinstance(loose, str) or not loose.strip():
                raise ValueError(f"claim {label!r}: loose must say why the check passes a tighter bound")
            info["loose"] = loose.strip()
        if verdict == "open":
            info["tries"] = int(tries if tries is not None else a.size)
        m = float(np.min(margin))
        keep = slice(0, MAX_STORED_VALUES)  # the record keeps the first values; the margin covers all
        claim = Claim(chapter=self.chapter, label=label, name=name, statement=statement.strip(), kind=kind,
                      relation=rel, lhs=[_jsonable(x) for x in a[keep]], rhs=[_jsonable(x) for x in b[keep]],
                      margin=m if math.isfinite(m) else (1e308 if m > 0 else -1e308),
                      verdict=verdict, seeds=None if seeds is None else [int(s) for s in seeds],
                      tol=float(tol), n_cases=int(a.size), extra=info,
                      box=None if box is None else asdict(box), sensitivity=sens)
        self.claims.append(claim)
        if self.record:
            self.save(complete=False)
        return claim

    def refute(self, label: str, lhs, printed: str, rhs, *, corrected: str, statement: str, kind: str,
               name: str = "", seeds: Sequence[int] | None = None, extra: dict | None = None) -> Claim:
        """Record a counterexample: the paper prints ``lhs printed rhs``; check its negation on every case.

        The check is ``lhs not-printed rhs`` (``>`` for a printed ``<=``, ``>=`` for ``<``, and so on),
        true on each given case, so each case is a counterexample to the statement as printed; the
        verdict is ``"fails as printed"``. ``corrected`` is the label of the box of the corrected
        statement (its own claims hold); the ledger page links it. Raises :class:`ClaimFailed` when the
        printed relation holds on some case (that case is no counterexample), ``ValueError`` for a
        ``printed`` that is not an inequality or a ``corrected`` label with no box in the book.
        """
        if printed not in _OPPOSITE:
            raise ValueError(f"claim {label!r}: printed must be the paper's inequality (<, <=, >, >=), "
                             f"got {printed!r}")
        if not isinstance(corrected, str) or not _LABEL.match(corrected):
            raise ValueError(f"claim {label!r}: corrected must be the label of the corrected statement's box")
        self._box(corrected)
        return self.check(label, lhs, _OPPOSITE[printed], rhs, statement=statement, kind=kind, name=name,
                          seeds=seeds, extra=dict(extra or {}) | {"printed": printed},
                          _role="refutation", _corrected=corrected)

    def witness(self, label: str, lhs, rel: str, rhs, *, control_lhs, control_rhs, control: str,
                statement: str, kind: str, name: str = "", seeds: Sequence[int] | None = None,
                extra: dict | None = None) -> Claim:
        """Record an existence claim: there is a case with ``lhs rel rhs``, and show the check able to fail.

        An existence claim (a counterexample to a statement that is *not* the paper's, for example "the
        augmented distance is not a metric": a triple with ``d13 > d12 + d23``) is not a bound. A wide
        margin is what a witness should have, so moving the bound 10 % tells nothing about whether the
        check can fail. What can fail is the *relation*: on a case where the contradicted statement holds
        (a true metric, a point on the sphere), the same quantity must not satisfy ``lhs rel rhs``. So

        1. ``lhs rel rhs`` is checked on every given case (the witnesses): :class:`ClaimFailed` when
           one is no witness;
        2. ``control_lhs rel control_rhs`` is computed the same way on ``control``, a case (or cases)
           where the contradicted statement holds, and must be false on *every* control case:
           ``ValueError`` when a control satisfies the relation (the check would accept a case that is
           no counterexample, so it could not tell one from the other).

        The verdict is computed as for any check that passed ("holds": the existence is shown by the
        witness). The sensitivity is ``{"test": "control rejected", "group": "witness", "fails": True}``
        with the 10 % test kept as ``fails_10pct`` for the all-inequality count; ``extra`` records
        ``control`` (in words), ``control_lhs``, ``control_rhs`` and ``control_margin`` (negative: how far
        the control is from satisfying the relation). :func:`sensitivity_summary` counts witnesses as
        their own group, not in the share of bound checks. ``rel`` must be an inequality.
        """
        return self._controlled("witness", label, lhs, rel, rhs, control_lhs=control_lhs,
                                control_rhs=control_rhs, control=control, statement=statement, kind=kind,
                                name=name, seeds=seeds, extra=extra)

    def observe(self, label: str, lhs, rel: str, rhs, *, control_lhs, control_rhs, control: str,
                statement: str, kind: str, name: str = "", seeds: Sequence[int] | None = None,
                extra: dict | None = None) -> Claim:
        """Record an observation on measured runs, and show the check able to fail by a control run.

        An *observation* states how something measured came out, where no result of the paper or the
        book implies it: trained encoders ("after training with lambda = 0.1, max mu_k^T mu_l < 0 on
        every seed", "every abcde encoder is at least 15 points above the untrained one") or the numbers
        the paper prints ("every column of Table 1 decreases at each step"). Its right-hand side is a
        reading the book chose (a sign, a fixed number, a trivial bound such as 1, or another
        measurement), not a bound on the left-hand side, so moving it 10 % says nothing about whether
        the check can fail. A check of a *bound* of the paper or the book is a bound check even when
        its cases are trained encoders (use :meth:`check`).

        What shows an observation able to fail is a *control*: the same quantity, measured the same way
        on runs where the observed effect is absent (the untrained encoder, the other loss, the rows
        without the transformation, the book's own measurement of a printed table), on which the
        relation must be false. As for :meth:`witness`:

        1. ``lhs rel rhs`` is checked on every observed case: :class:`ClaimFailed` when one fails;
        2. ``control_lhs rel control_rhs`` must be false on *every* control case: ``ValueError``
           otherwise (the check would accept the control, so it could not tell the effect from its
           absence).

        The verdict is "holds"; the sensitivity is ``{"test": "control rejected", "group":
        "observation", "fails": True}`` (the 10 % test kept as ``fails_10pct`` for the all-inequality
        count); ``extra`` records the control as for a witness. :func:`sensitivity_summary` counts
        observations as their own group, apart from the bound checks.
        """
        return self._controlled("observation", label, lhs, rel, rhs, control_lhs=control_lhs,
                                control_rhs=control_rhs, control=control, statement=statement, kind=kind,
                                name=name, seeds=seeds, extra=extra)

    def _controlled(self, group: str, label: str, lhs, rel: str, rhs, *, control_lhs, control_rhs,
                    control: str, statement: str, kind: str, name: str, seeds, extra) -> Claim:
        """A check shown able to fail by a control case: :meth:`witness` and :meth:`observe`."""
        what = "a witness's" if group == "witness" else "an observation's"
        if rel not in _OPPOSITE:
            raise ValueError(f"claim {label!r}: {what} relation must be an inequality (<, <=, >, >=), "
                             f"got {rel!r}")
        if not isinstance(control, str) or not control.strip():
            raise ValueError(f"claim {label!r}: say in words what the control case is (where the "
                             + ("contradicted statement holds)" if group == "witness"
                                else "observed effect is absent)"))
        ca = _as_values(control_lhs, "control_lhs", label)
        cb = _as_values(control_rhs, "control_rhs", label)
        if ca.size != cb.size and 1 not in (ca.size, cb.size):
            raise ValueError(f"claim {label!r}: control_lhs has {ca.size} values and control_rhs {cb.size}")
        ca, cb = np.broadcast_arrays(ca, cb)
        cmargin = _margins(ca, rel, cb, 0.0)
        accepted = _holds(cmargin, rel)
        if accepted.any():
            bad = np.flatnonzero(accepted)
            other = "a witness" if group == "witness" else "the observed effect"
            raise ValueError(f"[{self.chapter}] claim {label}{' (' + name + ')' if name else ''}: the control "
                             f"({control}) also satisfies lhs {rel} rhs on {len(bad)} of {ca.size} case(s) "
                             f"(lhs={_short(ca[bad])}, rhs={_short(cb[bad])}), so the check cannot tell "
                             f"{other} from a case without it")
        a = _as_values(lhs, "lhs", label)
        b = _as_values(rhs, "rhs", label)
        if a.size == b.size or 1 in (a.size, b.size):
            a, b = np.broadcast_arrays(a, b)
            with np.errstate(invalid="ignore"):
                old = _inequality_sensitivity(a, rel, b, None)
        else:
            old = {}  # check() refuses the shapes below
        sens = {"test": "control rejected", "group": group, "fails": True,
                "fails_10pct": old.get("fails_10pct"), "loose_10x": old.get("loose_10x")}
        keep = slice(0, MAX_STORED_VALUES)
        info = dict(extra or {}) | {"control": control.strip(),
                                    "control_lhs": [_jsonable(x) for x in ca[keep]],
                                    "control_rhs": [_jsonable(x) for x in cb[keep]],
                                    "control_margin": float(np.max(cmargin))}
        return self.check(label, lhs, rel, rhs, statement=statement, kind=kind, name=name, seeds=seeds,
                          extra=info, _role="witness", _sensitivity=sens)

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
        box = self._box(label)
        effect, ci_low, ci_high, sd, verdict = paired_effect(h, lo_vals, confidence)
        keep = slice(0, MAX_STORED_VALUES)
        claim = Claim(chapter=self.chapter, label=label, name=name, statement=statement.strip(), kind=kind,
                      relation=">", lhs=[float(x) for x in h[keep]], rhs=[float(x) for x in lo_vals[keep]],
                      margin=ci_low, verdict=verdict, seeds=[int(s) for s in seeds], n_cases=n,
                      extra={"effect": effect, "ci_low": ci_low, "ci_high": ci_high, "confidence": float(confidence),
                             "interval": "paired t", "n": n, "sd": sd},
                      box=None if box is None else asdict(box))
        self.claims.append(claim)
        if self.record:
            self.save(complete=False)
        return claim

    def check_identity(self, label: str, lhs, rhs, *, statement: str, name: str = "", assumptions=None,
                       regression: str | None = None) -> Claim:
        """Check a symbolic identity ``lhs == rhs`` with sympy: ``simplify(lhs - rhs)`` must be 0.

        The recorded lhs/rhs are 0 and the simplified difference (which is 0 when the claim holds). Its
        sensitivity: the same simplification with the right-hand side perturbed (``rhs (1 + 1/10)``, or
        ``rhs + 1/10`` when ``rhs`` is 0) must leave a nonzero difference.
        """
        import sympy as sp

        def reduce(expr):
            diff = sp.simplify(expr)
            if assumptions is not None:
                diff = sp.simplify(sp.refine(diff, assumptions))
            return diff

        left, right = sp.sympify(lhs), sp.sympify(rhs)
        diff = reduce(left - right)
        if diff != 0:
            raise ClaimFailed(f"[{self.chapter}] claim {label}{' (' + name + ')' if name else ''} does not "
                              f"hold: {statement}\n  sympy leaves lhs - rhs = {diff}, not 0")
        bumped = right * sp.Rational(11, 10) if reduce(right) != 0 else right + sp.Rational(1, 10)
        rejected = reduce(left - bumped) != 0
        return self.check(label, 0.0, "==", 0.0, statement=statement, kind="symbolic", name=name,
                          extra={"identity": f"{sp.sstr(lhs)} == {sp.sstr(rhs)}"}, regression=regression,
                          _sensitivity={"test": "perturbed rhs", "fails": bool(rejected),
                                        "perturbed_rejected": bool(rejected)})

    def check_proof(self, label: str, proof, *, name: str = "", statement: str | None = None,
                    regression: str | None = None) -> Claim:
        """Record a :class:`cssl.symbolic.Proof` (sympy proved ``lhs relation rhs``); raise if it did not hold.

        The recorded lhs/rhs are 0 and 0: the evidence is the proof's method and residual, kept in
        ``extra``. For an identity (relation ``==``) the sensitivity records that the perturbed right-hand
        side ``rhs (1 + 1/10)`` (or ``rhs + 1/10``) is rejected; an inequality proof records ``sympy proof``.
        """
        import sympy as sp

        text = statement or getattr(proof, "statement", "")
        if not hasattr(proof, "holds") or not hasattr(proof, "residual"):
            raise TypeError(f"claim {label!r}: check_proof needs a cssl.symbolic.Proof, got {type(proof).__name__}")
        if not proof.holds:
            raise ClaimFailed(f"[{self.chapter}] claim {label}{' (' + name + ')' if name else ''} does not hold: "
                              f"{text}\n  sympy could not prove it; residual {proof.residual}")
        sens = {"test": "symbolic proof", "fails": None}
        if getattr(proof, "relation", None) == "==":
            right = sp.sympify(proof.rhs)
            bumped = right * sp.Rational(11, 10) if sp.simplify(right) != 0 else right + sp.Rational(1, 10)
            rejected = sp.simplify(sp.sympify(proof.lhs) - bumped) != 0
            sens = {"test": "perturbed rhs", "fails": bool(rejected), "perturbed_rejected": bool(rejected)}
        return self.check(label, 0.0, "==", 0.0, statement=text, kind="symbolic", name=name,
                          extra={"method": proof.method, "residual": sp.sstr(proof.residual)},
                          regression=regression, _sensitivity=sens)

    # ---------------------------------------------------------------- reporting
    def verdict_lines(self) -> list[str]:
        """The verdict table as lines: box, check, verdict, margin and sensitivity of each claim.

        The box is its number and title as the book prints them (the label when the claim's box is not
        in the book); the margin has two significant digits (an experiment shows its effect and
        interval); the sensitivity says whether the check fails against a tighter bound.
        """
        rows = []
        for c in self.claims:
            box = Box(**c.box).heading if c.box else c.label
            box = box.replace("$", "")
            box = box if len(box) <= 44 else box[:43] + "…"
            check = c.name or "-"
            check = check if len(check) <= 38 else check[:37] + "…"
            margin = f"effect {format_effect(c)}" if "effect" in c.extra else format_margin(c.margin)
            rows.append((box, check, c.verdict, margin, sensitivity_text(c)))
        head = ("statement", "check", "verdict", "margin", "can fail?")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        counts = {v: sum(c.verdict == v for c in self.claims) for v in VERDICTS}
        tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        lines = [f"Chapter {self.chapter}: {len(rows)} claim(s), all checked ({tally})", fmt.format(*head),
                 fmt.format(*("-" * w for w in widths))]
        return lines + [fmt.format(*r).rstrip() for r in rows]

    def verdicts(self) -> None:
        """Print the verdict table (for the chapter's ``# NBVAL_CHECK_OUTPUT`` cell), save the record and, in
        a notebook, display the same claims as a table with linked boxes (:func:`ledger_markdown`).

        Raises when the chapter checked nothing, or when a refutation's corrected statement has no claim
        that holds in this chapter.
        """
        if not self.claims:
            raise ValueError(f"chapter {self.chapter} checked no claims; every chapter checks at least one")
        held = {c.label for c in self.claims if c.verdict in ("holds", "true but vacuous")}
        for c in self.claims:
            target = c.extra.get("corrected")
            if target is not None and target not in held:
                raise ValueError(f"claim {c.label} ({c.name}) refutes the printed statement and names "
                                 f"{target!r} as corrected, but no claim of {target!r} holds in this chapter")
        if self.record:
            self.save(complete=True)
        print("\n".join(self.verdict_lines()))
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display
        except ImportError:  # pragma: no cover - IPython comes with the book's requirements
            return
        if get_ipython() is not None:
            # the page shows this table (boxes linked, verdicts marked); the printed lines above are what
            # nbval compares, and the site's stylesheet hides them
            display(Markdown(ledger_markdown([asdict(c) for c in self.claims], root=self.root, title=False)))

    def save(self, *, complete: bool = True) -> Path:
        """Write ``_build/claims/<chapter>.json`` atomically (records plus the source hash).

        The record written after each check has ``complete=False`` (a chapter still running, or stopped
        halfway), and :func:`collect` treats it as stale; :meth:`verdicts` at the end of the chapter, or
        a page that checks no claims calling ``save()`` itself, writes it complete.
        """
        path = self.root / RECORD_DIR / f"{self.chapter}.json"
        modules = loaded_modules()
        atomic_write_json(path, {"chapter": self.chapter, "complete": bool(complete), "modules": modules,
                                 "source_hash": source_hash(self.notebook, modules),
                                 "claims": [asdict(c) for c in self.claims]})
        return path


# -------------------------------------------------------------------- the ledger page
def _toc_chapters(root: Path) -> list[str]:
    """Chapter notebooks named in ``_toc.yml`` (in book order), as stems under ``chapters/``."""
    return [Path(f).name for f, _ in toc_files(root)
            if f.startswith("chapters/") and (root / f"{f}.ipynb").is_file()]


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
            timeout: int = 600, passes: int = 3) -> list[dict]:
    """All recorded claims of the book's chapters, in book order.

    For each chapter notebook in ``_toc.yml`` that records claims (its code opens a ``Ledger``), minus
    ``exclude``, reads ``_build/claims/<chapter>.json``; when it is missing or its source hash is stale
    and ``rebuild_stale`` is true, executes the chapter first (which rewrites the record). A change of
    the sources while chapters run makes earlier records stale again, so the sweep is repeated up to
    ``passes`` times. A record is current when the chapter ran to its verdict table (complete) and its
    hash matches. Raises when a chapter still has no current record.
    """
    root = book_root(root)
    skip = set(exclude)
    chapters = [c for c in _toc_chapters(root) if c not in skip
                and "Ledger(" in _notebook_sources(root / "chapters" / f"{c}.ipynb")]

    def fresh(chapter: str) -> bool:
        path = root / RECORD_DIR / f"{chapter}.json"
        if not path.is_file():
            return False
        record = json.loads(path.read_text(encoding="utf-8"))
        current = source_hash(root / "chapters" / f"{chapter}.ipynb", record.get("modules"))
        return bool(record.get("complete")) and record.get("source_hash") == current

    for _ in range(max(1, passes) if rebuild_stale else 0):
        stale = [c for c in chapters if not fresh(c)]
        if not stale:
            break
        for chapter in stale:
            _execute(root / "chapters" / f"{chapter}.ipynb", timeout)
    out: list[dict] = []
    for chapter in chapters:
        path = root / RECORD_DIR / f"{chapter}.json"
        if not fresh(chapter):
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


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


#: Tokens longer than this get break opportunities in the ledger page's tables (see :func:`_breakable`).
_LONG_TOKEN = 14
_BREAK_AFTER = re.compile(r"([(,/.=+;:])(?=.)")


def _breakable(text: str) -> str:
    """A table cell's text (as :func:`_md_cell`) in which long tokens may wrap: ``<wbr>`` (a break the
    browser may take, which copying ignores) after ``( , / . = + ; :`` and ``_`` (escaped, so that it
    cannot start emphasis) inside each token of more than 14 characters, outside ``$math$`` and
    ```code```. A table of the ledger page is as wide as its longest unbreakable tokens, e.g.
    ``lemma32_counterexample_world:``."""
    out = []
    # math ($...$) and code (`...`) stay as they are; only the text between them gets breaks
    for i, part in enumerate(re.split(r"(\$[^$]*\$|`[^`]*`)", _md_cell(text))):
        if i % 2 == 0:
            part = " ".join(_BREAK_AFTER.sub(r"\1<wbr>", re.sub(r"(?<!\\)_(?=.)", r"\\_<wbr>", t))
                            if len(t) > _LONG_TOKEN else t for t in part.split(" "))
        out.append(part)
    return "".join(out)


def _seed_text(seeds: Sequence[int]) -> str:
    """The distinct seeds of a claim, in order: ``0-4`` for a run of three or more, else ``0, 1``."""
    distinct = list(dict.fromkeys(seeds))
    if len(distinct) >= 3 and distinct == list(range(distinct[0], distinct[0] + len(distinct))):
        return f"{distinct[0]}\u2013{distinct[-1]}"
    return ", ".join(map(str, distinct))


def how_checked(record) -> str:
    """How a claim was checked, for the ledger page: its kind and its cases, e.g. ``exact, 300 cases``,
    ``empirical, 15 cases, seeds 0-4`` (the distinct seeds), or ``symbolic`` for one sympy proof."""
    r = record if isinstance(record, dict) else asdict(record)
    n = int(r["n_cases"])
    if r["kind"] == "symbolic" and n == 1 and not r.get("seeds"):
        return "symbolic"
    text = f"{r['kind']}, {n} case{'s' if n != 1 else ''}"
    if r.get("seeds"):
        distinct = list(dict.fromkeys(r["seeds"]))
        text += f", seed{'s' if len(distinct) > 1 else ''} {_seed_text(r['seeds'])}"
    return text


def ledger_markdown(records: list[dict], *, root: str | os.PathLike | None = None, title: bool = True) -> str:
    """The ledger as MyST: per chapter a linked title (``title=False``: none), then a table with one row
    per claim.

    Four columns, so that each table fits the text column of the site (and of the PDF):

    * *statement*: the statement's box, its number linked with ``{prf:ref}`` and its title;
    * *claim*: the claim in words (its long tokens may wrap, see :func:`_breakable`);
    * *verdict; margin; can fail?*: the verdict (with the corrected statement of a refutation, the
      floor of a vacuous claim, the number of tries of an open one), then on a new line the margin, the
      worst-case slack (for :meth:`Ledger.compare` the effect and its interval, e.g.
      ``effect +0.032 [0.011, 0.053] (paired t, 95%)``), and whether the check can fail
      (:func:`sensitivity_text`);
    * *how checked*: the kind and the cases with their seeds (:func:`how_checked`).

    The chapters' own verdict tables (:meth:`Ledger.verdict_lines`) are separate and unchanged.
    """
    root = book_root(root)
    boxes = book_boxes(root)
    blocks: list[str] = []
    chapters = list(dict.fromkeys(r["chapter"] for r in records))
    for chapter in chapters:
        rows = [r for r in records if r["chapter"] == chapter]
        lines = [f"**{{doc}}`{_chapter_title(root, chapter)} <{chapter}>`** ({len(rows)} claims)", ""] if title else []
        lines += ["| statement | claim | verdict; margin; can fail? | how checked |", "|---|---|---|---|"]
        for r in rows:
            extra = r.get("extra") or {}
            margin_txt = f"margin {format_margin(r['margin'])}"
            if "effect" in extra:
                margin_txt = f"effect {format_effect(r, describe=True)}"
            sens = sensitivity_text(r)
            if sens != "-":
                margin_txt += f"; {sens}"
            box = _record_box(r, boxes)
            where = (f"{{prf:ref}}`{box['number']} <{r['label']}>` ({_breakable(box['title'])})" if box
                     else f"{{prf:ref}}`{r['label']}`")
            verdict = r["verdict"]
            if "corrected" in extra:
                target = boxes.get(extra["corrected"])
                verdict += f"; corrected: {{prf:ref}}`{target.number if target else extra['corrected']}" \
                           f" <{extra['corrected']}>`"
            if "floor" in extra:
                floor = boxes.get(extra["floor"]["label"])
                verdict += f"; floor: {{prf:ref}}`{floor.number if floor else extra['floor']['label']}" \
                           f" <{extra['floor']['label']}>` ({_breakable(extra['floor']['name'])})"
            if "tries" in extra:
                verdict += f": no counterexample in {extra['tries']} tries"
            if "regression" in extra:
                verdict += f" ({_breakable(extra['regression'])})"
            lines.append(f"| {where} | {_breakable(r['statement'])} | {verdict}<br>{margin_txt} | "
                         f"{how_checked(r)} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "*No claims recorded yet.*"


# -------------------------------------------------------------------- the paper's results
#: The statuses :func:`result_status` computes for a numbered result of the paper.
STATUSES = ("proved as printed", "false as printed", "true but vacuous", "open", "reproduces",
            "reversed", "inconclusive", "mixed", "not checked")


def result_status(records: Iterable[dict], labels: Sequence[str]) -> tuple[str, dict]:
    """The status of one result of the paper, computed from the claims recorded on its boxes ``labels``.

    An experiment (claims of :meth:`Ledger.compare`): ``"reproduces"``, ``"reversed"`` or
    ``"inconclusive"`` when all its comparisons agree, ``"mixed"`` otherwise. A statement: ``"open"``
    if any check is open; else ``"true but vacuous"`` if any is; else ``"false as printed"`` if any check
    refutes it (its corrected boxes are returned); else ``"proved as printed"`` when every check holds;
    ``"not checked"`` when no claim names these boxes. Regression tests do not count. Returns
    ``(status, detail)`` with ``detail`` = the verdict counts and the corrected labels.
    """
    rows = [r for r in records if r["label"] in set(labels) and r["verdict"] != "regression test"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    corrected = sorted({(r.get("extra") or {}).get("corrected") for r in rows} - {None})
    detail = {"counts": counts, "corrected": corrected}
    if not rows:
        return "not checked", detail
    computed = {v: n for v, n in counts.items() if v in COMPUTED_VERDICTS}
    if computed:
        return (next(iter(computed)) if len(computed) == 1 else "mixed"), detail
    for verdict, status in (("open", "open"), ("true but vacuous", "true but vacuous"),
                            ("fails as printed", "false as printed")):
        if counts.get(verdict):
            return status, detail
    return "proved as printed", detail
