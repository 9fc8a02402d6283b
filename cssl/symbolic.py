"""The paper's formulas in sympy, and proofs of its algebraic steps that sympy checks.

Two kinds of objects live here:

* ``*_expr`` functions return the sympy expression of a constant or bound, in the module-level
  symbols below (``sigma``, ``delta``, ``epsilon``, ...). They are the twins of the numeric functions of
  :mod:`cssl.bounds` (the tests check both agree at random points via ``sympy.lambdify``).
* ``prove_*`` functions return a :class:`Proof`: the two sides, the residual sympy reduced to, how it
  was proven, and ``holds``. A :class:`Proof` is truthy only when sympy *proved* the statement
  (a residual simplified to exactly 0, an ideal-membership remainder of 0, or a residual written as a
  combination of nonnegative quantities with nonnegative coefficients); never by sampling. Notebooks
  display it (``_repr_latex_``).

Labels: ``[paper]`` marks the paper's statement, ``[book]`` the book's reconstruction (Chapters 3,
4, 5 and 6), which is not the paper's word.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import sympy as sp

from ._validate import check_int

__all__ = [
    # symbols
    "sigma", "delta", "epsilon", "R_eps", "p_k", "p_l", "L", "r", "M", "m", "n", "h", "rho", "Delta_mu",
    "L1", "L2", "tau", "tau_prime", "d", "K", "eta_sym", "lam",
    # expressions
    "rho_expr", "theorem1_threshold_expr", "theorem1_bound_expr", "eta_h_expr", "eta_branch_expr",
    "eta_closed_form_expr", "eta_argmin_expr", "theorem3_rhs_expr", "tau_book_expr", "infonce_l2_floor_expr",
    "theorem3_rhs_floor_expr", "theorem4_rhs_expr", "infonce_err_bound_expr", "cross_correlation_err_bound_expr",
    # proofs
    "Proof", "prove_nn_classifier_is_linear", "prove_sphere_inner_product_identity", "prove_infonce_log_split",
    "prove_align_equals_2l1_plus_2", "prove_cross_correlation_split", "prove_linear_loss_independence",
    "linear_loss_collapse_example", "temperature_series", "prove_lemma32_final_algebra",
    "prove_lemma41_identity", "ideal_point", "prove_eta_closed_form", "eta_small_eps_limit",
    "eta_large_eps_limit", "prove_theorem4_core",
]

# ----------------------------------------------------------------------------------- symbols
sigma = sp.Symbol("sigma", positive=True)
delta = sp.Symbol("delta", nonnegative=True)
epsilon = sp.Symbol("epsilon", positive=True)
R_eps = sp.Symbol("R_epsilon", nonnegative=True)
p_k = sp.Symbol("p_k", positive=True)
p_l = sp.Symbol("p_l", positive=True)
L = sp.Symbol("L", positive=True)          # Lipschitz constant of f
r = sp.Symbol("r", positive=True)          # feature radius ||f|| = r
M = sp.Symbol("M", positive=True)          # Lipschitz constant of theta -> A_theta(x)
m = sp.Symbol("m", positive=True)          # number of discrete augmentations
n = sp.Symbol("n", positive=True, integer=True)  # number of continuous parameters
h = sp.Symbol("h", positive=True)          # cube side in Theorem 2's proof
rho = sp.Symbol("rho", nonnegative=True)
Delta_mu = sp.Symbol("Delta_mu", nonnegative=True)
L1 = sp.Symbol("L_1", real=True)
L2 = sp.Symbol("L_2", real=True)
tau = sp.Symbol("tau", nonnegative=True)
tau_prime = sp.Symbol("tau'", nonnegative=True)
d = sp.Symbol("d", positive=True, integer=True)
K = sp.Symbol("K", positive=True, integer=True)
eta_sym = sp.Symbol("eta", positive=True)
lam = sp.Symbol("lambda", nonnegative=True)


# ------------------------------------------------------------------------------- expressions
def rho_expr(coefficient: Literal["paper", "corrected"] = "paper") -> sp.Expr:
    r"""``rho_l`` of Lemma 3.2 in (sigma, delta, epsilon, R_eps, p_l, L, r).

    ``"paper"`` [paper]: ``2(1 - sigma) + R_eps/p_l + sigma(L delta/r + 2 eps/r)``.
    ``"corrected"`` [book, notes 3.2 step 3]: ``2(1 - sigma) + sigma a + (2 - a) R_eps/p_l`` with
    ``a = L delta/r + 2 eps/r``, derived for ``a <= 2`` (numeric twin returns 2 for ``a > 2``).
    """
    a = L * delta / r + 2 * epsilon / r
    if coefficient == "paper":
        return 2 * (1 - sigma) + R_eps / p_l + sigma * a
    if coefficient == "corrected":
        return 2 * (1 - sigma) + sigma * a + (2 - a) * R_eps / p_l
    raise ValueError(f"coefficient must be 'paper' or 'corrected', got {coefficient!r}")


def theorem1_threshold_expr(rho_value: sp.Expr = rho) -> sp.Expr:
    r"""[paper] eq. (2): ``r^2 (1 - rho - sqrt(2 rho) - Delta_mu / 2)`` (``rho`` may be replaced by :func:`rho_expr`)."""
    return r ** 2 * (1 - rho_value - sp.sqrt(2 * rho_value) - Delta_mu / 2)


def theorem1_bound_expr() -> sp.Expr:
    r"""[paper] eq. (3): ``(1 - sigma) + R_eps``."""
    return (1 - sigma) + R_eps


def _c() -> sp.Expr:
    return 2 * sp.sqrt(n) * L * M


def eta_h_expr() -> sp.Expr:
    r"""[paper] Theorem 2, the expression in the infimum: ``4 max{1, m^2 h^{2n}} / (h^{2n} (eps - 2 sqrt(n) L M h))``."""
    return 4 * sp.Max(1, m ** 2 * h ** (2 * n)) / (h ** (2 * n) * (epsilon - _c() * h))


def eta_branch_expr() -> sp.Expr:
    r"""[book] ``eta_h`` on the branch ``m^2 h^{2n} <= 1``: ``4 / (h^{2n} (eps - c h))``, ``c = 2 sqrt(n) L M``."""
    return 4 / (h ** (2 * n) * (epsilon - _c() * h))


def eta_argmin_expr() -> sp.Expr:
    r"""[book] Stationary point of :func:`eta_branch_expr`: ``h* = 2 n eps / (c (2n + 1))``."""
    return 2 * n * epsilon / (_c() * (2 * n + 1))


def eta_closed_form_expr() -> sp.Expr:
    r"""[book] ``eta(eps) = (4 (2n+1) / eps) (c (2n+1) / (2 n eps))^{2n}`` on the branch ``m^2 h*^{2n} <= 1`` (Chapter 4)."""
    c = _c()
    return 4 * (2 * n + 1) / epsilon * (c * (2 * n + 1) / (2 * n * epsilon)) ** (2 * n)


def theorem3_rhs_expr() -> sp.Expr:
    r"""[paper] Theorem 3: ``log(exp((L2 + tau) / (p_k p_l)) - exp(1 - eps))``."""
    return sp.log(sp.exp((L2 + tau) / (p_k * p_l)) - sp.exp(1 - epsilon))


def tau_book_expr() -> sp.Expr:
    r"""[book] ``tau = 4 R_eps`` for Theorem 3 (Chapter 5), valid for ``0 <= eps <= 1 - log(1 - 1/e)``."""
    return 4 * R_eps


def infonce_l2_floor_expr(alignment_floor: Literal["linear", "quadratic"] = "linear") -> sp.Expr:
    r"""[book] ``c(eps) = log(e^{a_min} + e^{-1})`` with ``a_min = 1 - eps`` (linear) or ``1 - eps^2/2`` (quadratic).

    Written for ``a_min >= -1`` (``eps <= 2``); the numeric twin clips ``a_min`` at ``-1``.
    """
    if alignment_floor == "linear":
        a_min = 1 - epsilon
    elif alignment_floor == "quadratic":
        a_min = 1 - epsilon ** 2 / 2
    else:
        raise ValueError(f"alignment_floor must be 'linear' or 'quadratic', got {alignment_floor!r}")
    return sp.log(sp.exp(a_min) + sp.exp(-1))


def theorem3_rhs_floor_expr(alignment_floor: Literal["linear", "quadratic"] = "linear") -> sp.Expr:
    r"""[book] Floor of Theorem 3's right-hand side at ``R_eps = 0``: ``log(exp(4 c(eps)) - exp(1 - eps))``."""
    return sp.log(sp.exp(4 * infonce_l2_floor_expr(alignment_floor)) - sp.exp(1 - epsilon))


def theorem4_rhs_expr(factor: Any = 2) -> sp.Expr:
    r"""Theorem 4: ``sqrt(factor / (p_k p_l) (L2 + tau' - (d - K)/2))``; ``factor=2`` [paper], ``factor=1`` [book, notes 6.3]."""
    return sp.sqrt(sp.sympify(factor) / (p_k * p_l) * (L2 + tau_prime - (d - K) / 2))


def infonce_err_bound_expr() -> sp.Expr:
    r"""[paper] InfoNCE corollary: ``(1 - sigma) + eta sqrt(2 + 2 L1)``."""
    return (1 - sigma) + eta_sym * sp.sqrt(2 + 2 * L1)


def cross_correlation_err_bound_expr() -> sp.Expr:
    r"""[paper] cross-correlation corollary: ``(1 - sigma) + sqrt(2) eta d^{1/4} L1^{1/4}``."""
    return (1 - sigma) + sp.sqrt(2) * eta_sym * d ** sp.Rational(1, 4) * L1 ** sp.Rational(1, 4)


# ------------------------------------------------------------------------------------ proofs
@dataclass(frozen=True)
class Proof:
    """A statement sympy proved (or failed to prove): ``lhs relation rhs``.

    ``residual`` is what ``lhs - rhs`` reduced to (0 for identities; a nonnegative certificate for
    inequalities); ``method`` says how; ``source`` cites the paper or the book; ``details`` holds
    intermediate expressions a notebook may show. ``bool(proof)`` is ``holds``.
    """

    statement: str
    lhs: Any
    rhs: Any
    relation: str
    residual: Any
    holds: bool
    method: str
    source: str
    details: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.holds)

    def _repr_latex_(self) -> str:
        rel = {"==": "=", ">=": r"\ge", "<=": r"\le", "!=": r"\ne"}.get(self.relation, self.relation)
        verdict = r"\text{proved}" if self.holds else r"\text{NOT proved}"
        return (f"$\\displaystyle {sp.latex(self.lhs)} {rel} {sp.latex(self.rhs)}"
                f"\\quad({verdict};\\ \\text{{residual }} {sp.latex(self.residual)})$")

    def __repr__(self) -> str:
        return (f"Proof({self.statement!r}: {'proved' if self.holds else 'NOT proved'}, "
                f"residual={self.residual}, method={self.method!r})")


def _is_zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


def _vector(name: str, dim: int) -> sp.Matrix:
    return sp.Matrix(sp.symbols(f"{name}1:{dim + 1}", real=True))


def prove_nn_classifier_is_linear(dim: int | None = None) -> Proof:
    r"""[paper, Sec. 2] The NN classifier is linear: ``||f - mu_k||^2 = ||f||^2 - 2 (mu_k^T f - ||mu_k||^2 / 2)``.

    Since ``||f||^2`` does not depend on ``k``, ``argmin_k ||f - mu_k|| = argmax_k (mu_k^T f - ||mu_k||^2/2)``:
    the linear classifier with ``W_k = mu_k``, ``b_k = -||mu_k||^2/2``. ``dim=None`` proves it in a
    symbolic dimension ``d`` (sums over ``i = 1..d``, equal summands); an integer proves it in
    ``R^dim``.
    """
    if dim is None:
        i = sp.Idx("i")
        f, mu = sp.IndexedBase("f"), sp.IndexedBase("mu_k")

        def total(e):
            return sp.Sum(e, (i, 1, d))

        lhs = total((f[i] - mu[i]) ** 2)
        rhs = total(f[i] ** 2) - 2 * (total(mu[i] * f[i]) - total(mu[i] ** 2) / 2)
        summand_gap = sp.expand((f[i] - mu[i]) ** 2 - (f[i] ** 2 - 2 * (mu[i] * f[i] - mu[i] ** 2 / 2)))
        residual = sp.simplify(lhs - rhs)
        holds = summand_gap == 0 and residual == 0
        method = "sums over the same range with identical summands; simplify(lhs - rhs) == 0"
    else:
        dim = check_int(dim, "dim", low=1)
        f, mu = _vector("f", dim), _vector("mu", dim)
        lhs = ((f - mu).T * (f - mu))[0]
        rhs = (f.T * f)[0] - 2 * ((mu.T * f)[0] - (mu.T * mu)[0] / 2)
        residual = sp.expand(lhs - rhs)
        holds = residual == 0
        method = "expand(lhs - rhs) == 0"
    return Proof("||f - mu_k||^2 = ||f||^2 - 2 (mu_k^T f - ||mu_k||^2/2), so argmin distance = argmax linear score",
                 lhs, rhs, "==", residual, holds, method, "paper Sec. 2; notes 11.1")


def prove_sphere_inner_product_identity(dim: int = 3, *, on_sphere: bool = True) -> Proof:
    r"""[paper, Sec. 4.1] ``-u^T v = ||u - v||^2 / 2 - 1`` when ``||u|| = ||v|| = 1``; false off the sphere.

    ``lhs - rhs = 1 - (||u||^2 + ||v||^2)/2`` identically; on the sphere it is reduced to 0 modulo the
    ideal generated by ``||u||^2 - 1`` and ``||v||^2 - 1`` (a proof of the identity on the sphere).
    With ``on_sphere=False`` the residual stays nonzero and ``details`` holds a counterexample
    (``u = 2 e_1``, ``v = 0``).
    """
    dim = check_int(dim, "dim", low=1)
    u, v = _vector("u", dim), _vector("v", dim)
    lhs = -(u.T * v)[0]
    rhs = ((u - v).T * (u - v))[0] / 2 - 1
    gap = sp.expand(lhs - rhs)
    if on_sphere:
        constraints = [sp.expand((u.T * u)[0] - 1), sp.expand((v.T * v)[0] - 1)]
        _, remainder = sp.reduced(gap, constraints, *list(u) + list(v))
        holds = remainder == 0
        return Proof("-u^T v = ||u - v||^2/2 - 1 on the unit sphere", lhs, rhs, "==", remainder, holds,
                     "remainder of lhs - rhs modulo (||u||^2 - 1, ||v||^2 - 1) is 0", "paper Sec. 4.1; notes 11.3",
                     {"gap_before_constraints": gap})
    point = {s: 0 for s in list(u) + list(v)}
    point[u[0]] = 2
    value = gap.subs(point)
    return Proof("-u^T v = ||u - v||^2/2 - 1 WITHOUT the unit-norm constraint", lhs, rhs, "==", gap,
                 _is_zero(gap), "expand(lhs - rhs) is not 0", "notes 11.3 (pitfall)",
                 {"counterexample": {"u": [2] + [0] * (dim - 1), "v": [0] * dim}, "gap_at_counterexample": value})


def prove_infonce_log_split() -> Proof:
    r"""[paper, eq. (5)] ``-log(e^a / (e^a + e^b)) = -a + log(e^a + e^b)`` for real ``a, b``."""
    a, b = sp.symbols("a b", real=True)
    lhs = -sp.log(sp.exp(a) / (sp.exp(a) + sp.exp(b)))
    rhs = -a + sp.log(sp.exp(a) + sp.exp(b))
    residual = sp.simplify(sp.expand_log(lhs - rhs, force=True))
    return Proof("-log(e^a/(e^a+e^b)) = -a + log(e^a+e^b)", lhs, rhs, "==", residual, residual == 0,
                 "simplify(expand_log(lhs - rhs)) == 0", "paper eq. (5); notes 11.3")


def prove_align_equals_2l1_plus_2() -> Proof:
    r"""[paper, Sec. 4.1] ``L_align = 2 L1 + 2`` where ``L1 = (1/2) E||f(x1) - f(x2)||^2 - 1`` (so ``sqrt(L_align) = sqrt(2 + 2 L1)``)."""
    align = sp.Symbol("L_align", nonnegative=True)
    l1_of_align = align / 2 - 1
    lhs, rhs = align, 2 * l1_of_align + 2
    residual = sp.simplify(lhs - rhs)
    return Proof("L_align = 2 L1 + 2", lhs, rhs, "==", residual, residual == 0,
                 "substitute L1 = L_align/2 - 1; simplify(lhs - rhs) == 0", "paper Sec. 4.1; notes 11.4",
                 {"L1": l1_of_align})


def prove_cross_correlation_split(dim: int = 3) -> Proof:
    r"""[paper, Sec. 4.2] ``sum_i (1 - F_ii)^2 + lam sum_{i != j} F_ij^2 = (1 - lam) L1 + lam ||F - I||^2`` for a symbolic ``dim x dim`` ``F``."""
    dim = check_int(dim, "dim", low=1)
    Fm = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"F_{i + 1}{j + 1}", real=True))
    diag_part = sum((1 - Fm[i, i]) ** 2 for i in range(dim))
    off = sum(Fm[i, j] ** 2 for i in range(dim) for j in range(dim) if i != j)
    lhs = diag_part + lam * off
    frob = sum(x ** 2 for x in (Fm - sp.eye(dim)))
    rhs = (1 - lam) * diag_part + lam * frob
    residual = sp.expand(lhs - rhs)
    return Proof(f"L_CC = (1 - lambda) L1 + lambda L2 (d = {dim})", lhs, rhs, "==", residual, residual == 0,
                 "expand(lhs - rhs) == 0", "paper Sec. 4.2; notes 6.1, 11.5", {"F": Fm})


def prove_linear_loss_independence(n_points: int = 2, n_views: int = 2, dim: int = 2) -> Proof:
    r"""[paper, Sec. 4.1] ``L2' = E f(x1)^T f(x^-) = ||E f||^2`` by independence of ``x, x'``, on a finite symbolic world.

    Points ``x_1..x_N`` with symbolic weights (the last one ``1 - sum`` of the others), each with
    ``V`` equiprobable views in ``R^dim`` with symbolic coordinates; ``lhs`` is the definition (double
    sum over independent ``x, x'`` and their views), ``rhs = ||sum_x w_x m_x||^2``.
    """
    n_points = check_int(n_points, "n_points", low=1)
    n_views = check_int(n_views, "n_views", low=1)
    dim = check_int(dim, "dim", low=1)
    free_w = sp.symbols(f"w1:{n_points}", positive=True) if n_points > 1 else ()
    weights = list(free_w) + [1 - sum(free_w)]
    views = [[sp.Matrix([sp.Symbol(f"v_{i + 1}{s + 1}{k + 1}", real=True) for k in range(dim)])
              for s in range(n_views)] for i in range(n_points)]
    lhs = sum(weights[i] * weights[j] * sp.Rational(1, n_views ** 2) * (views[i][s].T * views[j][u])[0]
              for i in range(n_points) for j in range(n_points)
              for s in range(n_views) for u in range(n_views))
    mean_f = sum((weights[i] * sp.Rational(1, n_views) * views[i][s] for i in range(n_points)
                  for s in range(n_views)), sp.zeros(dim, 1))
    rhs = (mean_f.T * mean_f)[0]
    residual = sp.expand(lhs - rhs)
    return Proof("E f(x1)^T f(x^-) = ||E f||^2 (x, x' independent)", lhs, rhs, "==", residual, residual == 0,
                 "expand(lhs - rhs) == 0 on a finite world with symbolic weights and views",
                 "paper Sec. 4.1; notes 5.4, 11.6")


def linear_loss_collapse_example() -> Proof:
    r"""[paper, Sec. 4.1] The linear loss's global minimum ``L' = -1`` (``lam = 1``) with collapsed classes.

    ``K = 4`` classes of mass 1/4; classes 1, 2 map to a unit vector ``v = (cos t, sin t)``, classes 3, 4
    to ``-v``, all views aligned. Then ``L1 = -1`` (its minimum on the sphere), ``L2' = ||E f||^2 = 0``
    (its minimum), so ``L' = -1`` is a global minimum, yet ``mu_1^T mu_2 = 1``: divergence fails.
    The proof checks ``L' + 1 == 0`` and ``mu_1^T mu_2 == 1`` symbolically in ``t``.
    """
    t = sp.Symbol("t", real=True)
    v = sp.Matrix([sp.cos(t), sp.sin(t)])
    centres = [v, v, -v, -v]
    p = sp.Rational(1, 4)
    l1 = -sum(p * (c.T * c)[0] for c in centres)
    mean_f = sum((p * c for c in centres), sp.zeros(2, 1))
    l2 = (mean_f.T * mean_f)[0]
    total = sp.simplify(l1 + l2)
    mu12 = sp.simplify((centres[0].T * centres[1])[0])
    holds = sp.simplify(total + 1) == 0 and mu12 == 1
    return Proof("collapsed classes reach the global minimum L' = -1 with mu_1^T mu_2 = 1", total, sp.Integer(-1),
                 "==", sp.simplify(total + 1), holds, "trigsimp; L1 >= -1 and L2' >= 0 make -1 the minimum",
                 "paper Sec. 4.1; notes 5.4, 11.6",
                 {"L1": sp.simplify(l1), "L2_prime": sp.simplify(l2), "mu1_dot_mu2": mu12})


def temperature_series(order: int = 3) -> Proof:
    r"""[Wang & Liu 2021, notes 5.4] InfoNCE with temperature ``t`` as ``t -> oo``.

    ``-log(e^{a/t} / (e^{a/t} + e^{b/t})) = log 2 + (b - a)/(2t) + (a - b)^2/(8 t^2) + O(t^{-3})``.
    ``lhs`` is sympy's series (in ``s = 1/t``, to ``O(s^order)``, with the O-term dropped, then
    ``s -> 1/t``); ``order`` must be 3 for the comparison with the stated expansion.
    """
    order = check_int(order, "order", low=1)
    a, b = sp.symbols("a b", real=True)
    s = sp.Symbol("s", positive=True)
    t = sp.Symbol("t", positive=True)
    loss = -sp.log(sp.exp(a * s) / (sp.exp(a * s) + sp.exp(b * s)))
    series = sp.series(loss, s, 0, order).removeO().subs(s, 1 / t)
    expected = sp.log(2) + (b - a) / (2 * t) + (a - b) ** 2 / (8 * t ** 2)
    residual = sp.simplify(series - expected)
    return Proof("InfoNCE(t) = log 2 + (b-a)/(2t) + (a-b)^2/(8t^2) + O(t^-3)", series, expected, "==", residual,
                 order == 3 and residual == 0, "sympy series in s = 1/t at 0; simplify(lhs - rhs) == 0",
                 "notes 5.4, 11.7", {"loss": loss.subs(s, 1 / t)})


def prove_lemma32_final_algebra(dim: int = 3) -> Proof:
    r"""[book proof of Lemma 3.2, steps 4-5; notes 11.8] The final inequality of Lemma 3.2.

    Hypotheses (all as nonnegative slacks): ``s1 = f^T mu_l - r^2 (1 - rho)``, ``s2 = r^2 - ||mu_l||^2``
    (Jensen), ``s3 = ||mu_k||^2 - r^2 (1 - Delta_mu)`` (definition of ``Delta_mu``), and
    ``s4 = r^2 sqrt(2 rho) + mu_l^T mu_k - f^T mu_k``. ``s1 >= 0`` is step 3, ``s2, s3 >= 0`` are
    definitions; ``s4 >= 0`` is derived here, not assumed: with ``x = f - mu_l`` and ``y = mu_k``,
    ``s4 = r^2 sqrt(2 rho) - x^T y``, and Lagrange's identity ``||x||^2 ||y||^2 - (x^T y)^2 =
    sum_{i<j} (x_i y_j - x_j y_i)^2`` (checked in ``R^dim``) gives ``(x^T y)^2 <= ||x||^2 ||y||^2 <=
    (2 rho r^2)(r^2)`` because ``||x||^2 = 2 rho r^2 - s2 - 2 s1 <= 2 rho r^2`` and ``||y||^2 <= r^2``
    (Jensen). The proof shows

    * ``||f - mu_k||^2 - ||f - mu_l||^2 = ||mu_k||^2 - ||mu_l||^2 + 2 f^T mu_l - 2 f^T mu_k`` in ``R^dim``;
    * ``||f - mu_l||^2 = 2 rho r^2 - s2 - 2 s1`` given ``||f||^2 = r^2``;
    * ``s4 >= 0`` by Lagrange's identity (``details["lagrange_gap"] == 0``);
    * ``lhs - rhs = 2 s1 + s2 + s3 + 2 s4 >= 0`` with
      ``rhs = 2 [r^2 (1 - rho - sqrt(2 rho) - Delta_mu/2) - mu_l^T mu_k]``.
    """
    dim = check_int(dim, "dim", low=1)
    f, mu_k, mu_l = _vector("f", dim), _vector("muk", dim), _vector("mul", dim)

    def dot(x, y):
        return (x.T * y)[0]

    identity_gap = sp.expand(dot(f - mu_k, f - mu_k) - dot(f - mu_l, f - mu_l)
                             - (dot(mu_k, mu_k) - dot(mu_l, mu_l) + 2 * dot(f, mu_l) - 2 * dot(f, mu_k)))
    # scalar form: P = f.mu_l, Q = f.mu_k, A = ||mu_k||^2, B = ||mu_l||^2, G = mu_l.mu_k
    P, Q, G = sp.symbols("P Q G", real=True)
    A, B = sp.symbols("A B", nonnegative=True)
    s1, s2, s3, s4 = sp.symbols("s1:5", nonnegative=True)
    slack_values = {s1: P - r ** 2 * (1 - rho), s2: r ** 2 - B, s3: A - r ** 2 * (1 - Delta_mu),
                    s4: r ** 2 * sp.sqrt(2 * rho) + G - Q}
    dist_l_gap = sp.expand((r ** 2 + B - 2 * P) - (2 * rho * r ** 2 - s2 - 2 * s1).subs(slack_values))
    lhs = A - B + 2 * P - 2 * Q
    rhs = 2 * (r ** 2 * (1 - rho - sp.sqrt(2 * rho) - Delta_mu / 2) - G)
    certificate = 2 * s1 + s2 + s3 + 2 * s4
    cert_gap = sp.expand(lhs - rhs - certificate.subs(slack_values))
    # s4 >= 0: Cauchy-Schwarz for x = f - mu_l, y = mu_k, from Lagrange's identity in R^dim
    x, y = f - mu_l, mu_k
    lagrange_gap = sp.expand(dot(x, x) * dot(y, y) - dot(x, y) ** 2
                             - sum((x[i] * y[j] - x[j] * y[i]) ** 2
                                   for i in range(dim) for j in range(i + 1, dim)))
    s4_form = sp.expand(r ** 2 * sp.sqrt(2 * rho) + dot(mu_l, mu_k) - dot(f, mu_k)
                        - (r ** 2 * sp.sqrt(2 * rho) - dot(x, y)))
    holds = (identity_gap == 0 and dist_l_gap == 0 and cert_gap == 0 and lagrange_gap == 0
             and s4_form == 0)
    return Proof("||f - mu_k||^2 - ||f - mu_l||^2 >= 2[r^2(1 - rho - sqrt(2 rho) - Delta_mu/2) - mu_l^T mu_k]",
                 lhs, rhs, ">=", certificate, holds,
                 "lhs - rhs equals a nonnegative combination of nonnegative slacks", "book, notes 3.2 steps 4-5, 11.8",
                 {"slacks": slack_values, "vector_identity_gap": identity_gap, "distance_identity_gap": dist_l_gap,
                  "lagrange_gap": lagrange_gap, "s4_is_r2_sqrt2rho_minus_xTy": s4_form})


def prove_lemma32_all_rho(dim: int = 3) -> Proof:
    r"""[book, thm-book-lem32-all] Lemma 3.2 as printed, for every ``rho_l``: each algebraic step, exact.

    Notation (``r = 1`` after scaling): ``u = f(x)``, ``m = mu_l``, ``n = mu_k``, ``t = |m|``,
    ``s = |n|``, ``z = |n - m|``, ``a = L delta / r + 2 eps / r``,
    ``h = 1 - P[C_l^0 cap S_eps | C_l] = 1 - sigma_l + q``, ``R = (1 - h) a + h``,
    ``e = m - (1 - h) u``, ``T = 1 - rho - sqrt(2 rho)``, ``kappa = 2 rho + 2 sqrt(2 rho)``,
    ``w = sqrt(2 rho)``, ``Phi = z^2 - 2 R z + h (t^2 - s^2)``, ``g = (1 + h) z - 2 R - 2 h s``.
    Each step is ``simplify(lhs - rhs) == 0`` (``details["residuals"]`` maps step to residual):

    * step 1: ``rho_l - (h + a) = (1 - sigma)(1 - a) + (sigma_l - sigma) + (R_eps/p_l - q)`` with the
      printed ``rho_l`` of :func:`rho_expr`, and ``rho#_l - (h + a) = (sigma_l - sigma) + (R_eps/p_l - q)``
      for ``rho#_l = (1 - sigma) + R_eps/p_l + a``;
    * step 2: ``T(3 - sqrt5) = -1``;
    * step 3: ``R = (h + a) - h a``;
    * step 4: ``s^2 + t^2 - 2T + 1 - min(s,t)^2 = max(s,t)^2 + kappa - 1`` (both orders);
    * step 5 (``rho <= 1/2``): ``2(h + a) - ((1-h) a + 2h) = a (1 + h)``, ``2 rho - 4 rho^2 =
      2 rho (1 - 2 rho)``, and ``1 + s^2 - 2G - 2 sqrt(y) s - y = 2 t1 + t2 + 2 t3 + t4`` with
      ``t1 = T - Delta/2 - G``, ``t2 = Delta - (1 - s^2)``, ``t3 = sqrt(2 rho) - sqrt(y) s``,
      ``t4 = 2 rho - y``;
    * step 6, key identity in ``R^dim`` (vectors, not scalars):
      ``(1 - h)(|u - n|^2 - |u - m|^2) = z^2 + h (t^2 - s^2) + 2 e.(n - m)``;
    * step 6: ``kappa(1/2) = 3``, ``kappa(3 - sqrt5) = 4``; case ``t >= s``:
      ``Phi - z (z - 2R) = h (t^2 - s^2)``; case ``s > t``: ``Phi - z g = h (t^2 - (z - s)^2)`` and
      ``g - [2(kappa-1)/3 - 2R] = (1-h)(z - 2(kappa-1)/3) + 2h(z - s - (kappa-1)/3)``;
      ``z - s = (z^2 - s^2)/(z + s)``;
    * the constant: ``2(kappa - 1)/3 - 2 rho = (2 - (w - 2)^2)/3`` (:func:`cssl.bounds.lemma32_key_constant`),
      positive at ``w = 1`` and ``w = sqrt5 - 1`` and concave in ``w``, hence positive in between.

    The only steps that are not identities are Cauchy-Schwarz (``e.(n - m) >= -R z``), the triangle
    inequality (``z <= s + t``) and Jensen (``t, s <= 1``), which the book's proof states. ``holds`` is
    true iff every residual is 0, the constant is positive at both ends and its second derivative in
    ``w`` is negative.
    """
    dim = check_int(dim, "dim", low=1)
    res: dict[str, sp.Expr] = {}
    # step 1, with the printed constant of rho_expr (module symbols) and rho#
    sig_l, q_ = sp.symbols("sigma_l q", real=True)
    a_ = L * delta / r + 2 * epsilon / r
    h_ = 1 - sig_l + q_
    res["step 1, printed rho_l"] = (rho_expr("paper") - (h_ + a_)
                                    - ((1 - sigma) * (1 - a_) + (sig_l - sigma) + (R_eps / p_l - q_)))
    rho_sharp = (1 - sigma) + R_eps / p_l + a_
    res["step 1, rho#_l"] = rho_sharp - (h_ + a_) - ((sig_l - sigma) + (R_eps / p_l - q_))
    # local symbols (r = 1 after scaling)
    rh = sp.Symbol("rho", positive=True)
    h, a = sp.symbols("h a", nonnegative=True)
    s, t, z, y, G, D = sp.symbols("s t z y G Delta", nonnegative=True)
    w = sp.Symbol("w", positive=True)
    T = 1 - rh - sp.sqrt(2 * rh)
    kap = 2 * rh + 2 * sp.sqrt(2 * rh)
    R = (1 - h) * a + h
    res["step 2, T(3 - sqrt5) = -1"] = T.subs(rh, 3 - sp.sqrt(5)) + 1
    res["step 3, R = (h + a) - h a"] = R - ((h + a) - h * a)
    for lo, hi in ((s, t), (t, s)):
        res[f"step 4, min = {lo}^2"] = s**2 + t**2 - 2 * T + 1 - lo**2 - (hi**2 + kap - 1)
    res["step 5, Jensen"] = 2 * (h + a) - ((1 - h) * a + 2 * h) - a * (1 + h)
    res["step 5, 4 rho^2 <= 2 rho"] = 2 * rh - 4 * rh**2 - 2 * rh * (1 - 2 * rh)
    t1, t2, t3, t4 = T - D / 2 - G, D - (1 - s**2), sp.sqrt(2 * rh) - sp.sqrt(y) * s, 2 * rh - y
    res["step 5, certificate"] = (1 + s**2 - 2 * G - 2 * sp.sqrt(y) * s - y
                                  - (2 * t1 + t2 + 2 * t3 + t4))
    u, m, n = (_vector(c, dim) for c in ("u", "m", "n"))

    def dot(x, v):
        return (x.T * v)[0]

    e = m - (1 - h) * u
    res["step 6, key identity"] = ((1 - h) * (dot(u - n, u - n) - dot(u - m, u - m))
                                   - (dot(n - m, n - m) + h * (dot(m, m) - dot(n, n)) + 2 * dot(e, n - m)))
    res["step 6, kappa(1/2) = 3"] = kap.subs(rh, sp.Rational(1, 2)) - 3
    res["step 6, kappa(3 - sqrt5) = 4"] = kap.subs(rh, 3 - sp.sqrt(5)) - 4
    Phi = z**2 - 2 * R * z + h * (t**2 - s**2)
    g = (1 + h) * z - 2 * R - 2 * h * s
    res["step 6a, t >= s"] = Phi - z * (z - 2 * R) - h * (t**2 - s**2)
    res["step 6b, Phi - z g"] = Phi - z * g - h * (t**2 - (z - s) ** 2)
    res["step 6b, g"] = (g - (2 * (kap - 1) / 3 - 2 * R)
                         - ((1 - h) * (z - 2 * (kap - 1) / 3) + 2 * h * (z - s - (kap - 1) / 3)))
    res["step 6b, z - s"] = (z - s) - (z**2 - s**2) / (z + s)
    const = (2 * (kap - 1) / 3 - 2 * rh).subs(rh, w**2 / 2)
    res["constant"] = const - (2 - (w - 2) ** 2) / 3
    residuals = {k: sp.simplify(sp.expand(v)) for k, v in res.items()}
    quad = (2 - (w - 2) ** 2) / 3
    ends = {"w = 1": sp.nsimplify(quad.subs(w, 1)), "w = sqrt5 - 1": sp.simplify(quad.subs(w, sp.sqrt(5) - 1))}
    curvature = sp.diff(quad, w, 2)
    holds = (all(v == 0 for v in residuals.values()) and all(bool(v > 0) for v in ends.values())
             and bool(curvature < 0))
    return Proof("Lemma 3.2 as printed, every rho_l: each algebraic step of the book's proof",
                 sp.Integer(0), sp.Integer(0), "==", sp.Add(*residuals.values()), holds,
                 "simplify(lhs - rhs) == 0 for each step; (2 - (w - 2)^2)/3 > 0 at w = 1 and w = sqrt5 - 1, "
                 "concave", "book, thm-book-lem32-all",
                 {"residuals": residuals, "constant_at_ends": ends, "curvature": curvature})


def prove_lemma41_identity(n_points: int = 2, n_views: int = 2, dim: int = 2) -> Proof:
    r"""[paper Lemma 4.1; book proof, notes 6.1, 11.9] ``L_align = 2 sum_i (1 - F_ii) <= 2 sqrt(d L1)``.

    On a finite symbolic world (symbolic weights and view coordinates): ``L_align - 2 sum_i (1 - F_ii)
    = 2 sum_i (E f_i^2 - 1)`` identically, so it vanishes under the normalisation ``E f_i^2 = 1``
    (only the second moments are needed, on the same view distribution). Then Cauchy-Schwarz:
    ``d sum t_i^2 - (sum t_i)^2 = sum_{i<j} (t_i - t_j)^2 >= 0`` (checked for ``d = dim``), so
    ``sum t_i <= sqrt(d sum t_i^2)`` with ``t_i = 1 - F_ii``.
    """
    n_points = check_int(n_points, "n_points", low=1)
    n_views = check_int(n_views, "n_views", low=1)
    dim = check_int(dim, "dim", low=1)
    free_w = sp.symbols(f"w1:{n_points}", positive=True) if n_points > 1 else ()
    weights = list(free_w) + [1 - sum(free_w)]
    views = [[[sp.Symbol(f"v_{i + 1}{s + 1}{k + 1}", real=True) for k in range(dim)] for s in range(n_views)]
             for i in range(n_points)]
    inv_v = sp.Rational(1, n_views)
    align = sum(weights[i] * inv_v ** 2 * sum((views[i][s][k] - views[i][t][k]) ** 2 for k in range(dim))
                for i in range(n_points) for s in range(n_views) for t in range(n_views))
    F_diag = [sum(weights[i] * (inv_v * sum(views[i][s][k] for s in range(n_views))) ** 2 for i in range(n_points))
              for k in range(dim)]
    second_moment = [sum(weights[i] * inv_v * views[i][s][k] ** 2 for i in range(n_points) for s in range(n_views))
                     for k in range(dim)]
    lhs = align
    rhs = 2 * sum(1 - Fk for Fk in F_diag)
    certificate = 2 * sum(mk - 1 for mk in second_moment)
    identity_gap = sp.expand(lhs - rhs - certificate)
    t = sp.symbols(f"t1:{dim + 1}", real=True)
    cs_gap = sp.expand(dim * sum(x ** 2 for x in t) - sum(t) ** 2
                       - sum((t[i] - t[j]) ** 2 for i in range(dim) for j in range(i + 1, dim)))
    holds = identity_gap == 0 and cs_gap == 0
    return Proof("L_align = 2 sum_i (1 - F_ii) under E f_i^2 = 1, hence <= 2 sqrt(d L1)", lhs, rhs, "==",
                 certificate, holds,
                 "lhs - rhs = 2 sum_i (E f_i^2 - 1) identically (0 under the normalisation); "
                 "Cauchy-Schwarz as a sum of squares",
                 "paper Lemma 4.1; notes 6.1, 11.9",
                 {"second_moments": second_moment, "cauchy_schwarz_gap": cs_gap})


def ideal_point() -> Proof:
    r"""[paper, after Theorem 1; notes 11.2] At ``sigma = 1, delta = eps = R_eps = 0``: ``rho = 0`` and, with ``Delta_mu = 0``, the threshold is ``r^2``.

    Checks both the paper's and the book's corrected ``rho``. (``Delta_mu = 0`` is a property of the
    encoder -- every class centre has norm ``r`` -- not implied by the four parameters alone.)
    """
    point = {sigma: 1, delta: 0, epsilon: 0, R_eps: 0}
    rho_paper = sp.simplify(rho_expr("paper").subs(point))
    rho_corr = sp.simplify(rho_expr("corrected").subs(point))
    threshold = sp.simplify(theorem1_threshold_expr(rho_paper).subs(Delta_mu, 0))
    residual = sp.simplify(threshold - r ** 2)
    holds = rho_paper == 0 and rho_corr == 0 and residual == 0
    return Proof("ideal point: rho_max = 0 and threshold = r^2", threshold, r ** 2, "==", residual, holds,
                 "substitution and simplify", "paper Sec. 3; notes 11.2",
                 {"rho_paper": rho_paper, "rho_corrected": rho_corr,
                  "tau_book": tau_book_expr().subs(point)})


def _n_value(n_value):
    if n_value is None:
        return n
    return sp.Integer(check_int(n_value, "n", low=1))


def prove_eta_closed_form(n_value: int | None = None) -> Proof:
    r"""[book, notes 4.2, 11.12] On the branch ``m^2 h^{2n} <= 1`` the infimum of Theorem 2 is the closed form.

    Shows ``d/dh log eta_h = c (2n+1)(h - h*) / (h (eps - c h))`` (so, since ``h > 0`` and
    ``eps - c h > 0``, ``eta_h`` decreases before ``h*`` and increases after: ``h*`` is the minimiser)
    and ``eta_h(h*) = eta_closed_form``. ``n_value=None`` keeps ``n`` symbolic.
    """
    nv = _n_value(n_value)
    branch = eta_branch_expr().subs(n, nv)
    h_star = eta_argmin_expr().subs(n, nv)
    c = _c().subs(n, nv)
    dlog = sp.diff(sp.expand_log(sp.log(branch), force=True), h)
    factored = c * (2 * nv + 1) * (h - h_star) / (h * (epsilon - c * h))
    derivative_gap = sp.simplify(dlog - factored)
    value = sp.simplify(branch.subs(h, h_star))
    closed = eta_closed_form_expr().subs(n, nv)
    ratio = sp.simplify(sp.powsimp(value / closed, force=True))
    holds = derivative_gap == 0 and ratio == 1
    return Proof("inf_h eta_h (branch m^2 h^2n <= 1) = 4(2n+1)/eps (c(2n+1)/(2n eps))^{2n}", value, closed, "==",
                 sp.simplify(ratio - 1), holds,
                 "d/dh log eta_h factored through h*; simplify(eta_h(h*) / closed form) == 1",
                 "book, notes 4.2, 11.12", {"h_star": h_star, "dlog_eta_dh": factored})


def eta_small_eps_limit(n_value: int | None = None) -> Proof:
    r"""[book, notes 4.2, 11.12] ``lim_{eps -> 0} eps^{2n+1} eta(eps) = 4 (2n+1) (c (2n+1) / (2n))^{2n} > 0``.

    So ``eta = Omega(eps^{-(2n+1)})`` as ``eps -> 0`` (the closed form is exact there, because
    ``h* -> 0 < m^{-1/n}``): the paper's "``eta = O(1/eps)``" holds only as ``eps -> oo``. For symbolic
    ``n`` the product simplifies to an ``eps``-free positive constant; for integer ``n`` sympy's
    ``limit`` is also taken.
    """
    nv = _n_value(n_value)
    c = _c().subs(n, nv)
    product = sp.simplify(sp.powsimp(epsilon ** (2 * nv + 1) * eta_closed_form_expr().subs(n, nv), force=True))
    constant = 4 * (2 * nv + 1) * (c * (2 * nv + 1) / (2 * nv)) ** (2 * nv)
    details = {"product": product}
    if n_value is not None:
        details["limit"] = sp.limit(epsilon ** (2 * nv + 1) * eta_closed_form_expr().subs(n, nv), epsilon, 0)
    limit_value = details.get("limit", product)
    residual = sp.simplify(sp.powsimp(limit_value / constant, force=True) - 1)
    holds = (epsilon not in product.free_symbols and residual == 0 and bool(constant.is_positive))
    return Proof("lim_{eps->0} eps^(2n+1) eta(eps) = positive constant, so eta = Omega(eps^-(2n+1))",
                 limit_value, constant, "==", residual, holds,
                 "powsimp/simplify of eps^(2n+1) * closed form (and sympy limit for integer n)",
                 "book, notes 4.2, 11.12", details)


def eta_large_eps_limit() -> Proof:
    r"""[book, notes 4.2] ``lim_{eps -> oo} eps * eta(eps) = 4 m^2``: the paper's ``O(1/eps)`` as ``eps -> oo``.

    For ``eps`` beyond the kink the infimum is ``4 m^2 / (eps - c m^{-1/n})`` (at ``h = m^{-1/n}``).
    """
    kink_value = 4 * m ** 2 / (epsilon - _c() * m ** (-1 / n))
    lim = sp.limit(epsilon * kink_value, epsilon, sp.oo)
    residual = sp.simplify(lim - 4 * m ** 2)
    return Proof("lim_{eps->oo} eps * eta(eps) = 4 m^2", lim, 4 * m ** 2, "==", residual, residual == 0,
                 "sympy limit", "book, notes 4.2", {"eta_large_eps": kink_value})


def prove_theorem4_core(num_classes: int = 2, dim: int = 2, k: int = 0, l: int = 1) -> Proof:
    r"""[book proof of Theorem 4, notes 6.3, 11.10] ``||M - I||^2 >= d - K + 2 p_k p_l (mu_k^T mu_l)^2``, ``M = sum_i p_i mu_i mu_i^T``.

    Proven as an identity with a sum-of-squares remainder::

        ||M - I||^2 - [d - K + 2 p_k p_l (mu_k^T mu_l)^2]
            = sum_i (p_i ||mu_i||^2 - 1)^2 + 2 sum_{i<j, (i,j) != (k,l)} p_i p_j (mu_i^T mu_j)^2  >= 0

    for symbolic ``p_i``, ``mu_i in R^dim``. ``details`` also proves the triangle step
    ``2||a + b||^2 + 2||b||^2 - ||a||^2 = ||a + 2 b||^2 >= 0`` (so ``||F - I||^2 >= ||M - I||^2/2 -
    ||F - M||^2``). Together: ``(mu_k^T mu_l)^2 <= (L2 + tau' - (d - K)/2) / (p_k p_l)``, the paper's
    Theorem 4 with ``factor = 1`` instead of 2.
    """
    num_classes = check_int(num_classes, "num_classes", low=2)
    dim = check_int(dim, "dim", low=1)
    k = check_int(k, "k", low=0, high=num_classes - 1)
    l = check_int(l, "l", low=0, high=num_classes - 1)
    if k == l:
        raise ValueError("k and l must be two different classes")
    ps = sp.symbols(f"p1:{num_classes + 1}", positive=True)
    mus = [_vector(f"mu{i + 1}_", dim) for i in range(num_classes)]
    Mm = sum((ps[i] * mus[i] * mus[i].T for i in range(num_classes)), sp.zeros(dim, dim))
    frob = sum(x ** 2 for x in (Mm - sp.eye(dim)))

    def dot(x, y):
        return (x.T * y)[0]

    rhs = dim - num_classes + 2 * ps[k] * ps[l] * dot(mus[k], mus[l]) ** 2
    certificate = (sum((ps[i] * dot(mus[i], mus[i]) - 1) ** 2 for i in range(num_classes))
                   + 2 * sum(ps[i] * ps[j] * dot(mus[i], mus[j]) ** 2 for i in range(num_classes)
                             for j in range(i + 1, num_classes) if {i, j} != {k, l}))
    gap = sp.expand(frob - rhs - certificate)
    a_vec, b_vec = _vector("a", dim), _vector("b", dim)
    triangle_gap = sp.expand(2 * dot(a_vec + b_vec, a_vec + b_vec) + 2 * dot(b_vec, b_vec) - dot(a_vec, a_vec)
                             - dot(a_vec + 2 * b_vec, a_vec + 2 * b_vec))
    holds = gap == 0 and triangle_gap == 0
    return Proof(f"||M - I||^2 >= d - K + 2 p_k p_l (mu_k^T mu_l)^2 (K = {num_classes}, d = {dim})", frob, rhs, ">=",
                 certificate, holds, "lhs - rhs equals a sum of squares with positive weights",
                 "book, notes 6.3, 11.10", {"triangle_step_gap": triangle_gap})
