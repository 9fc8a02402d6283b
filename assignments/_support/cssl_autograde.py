"""Grading helpers shipped with every assignment of the book (copied next to each notebook).

Nothing here is secret: it holds no solution and no test. The hidden tests use it to

* ``student(value, name)``: fail with a clear message when a function the question asks for is missing
  (a cell that raised, e.g. a syntax error, leaves it undefined);
* ``forbidden(*functions)``: while grading, make the ``cssl`` functions a question forbids raise when
  called, however the student reached them (``cssl.bounds.rho_max``, ``from cssl.bounds import rho_max``,
  an alias): the function's code object is swapped for one that raises, and restored afterwards;
* ``time_limit(seconds)``: stop a call that runs too long (``CSSL_GRADING_CALL_TIMEOUT`` seconds,
  default 60) with :class:`GradingTimeout`, so an endless loop costs that test and the rest is graded.

The grading process (``tools/build_assignments.py --grade``, and the autograder zip's ``run_otter.py`` on
Gradescope or with ``otter grade``) calls :func:`install_cell_timeout` so that a notebook cell that runs
longer than ``CSSL_GRADING_CELL_TIMEOUT`` seconds (default 120) is interrupted and recorded as an error;
the remaining cells and the tests still run.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading

__all__ = ["GradingTimeout", "ForbiddenCall", "student", "forbidden", "time_limit", "install_cell_timeout",
           "CALL_TIMEOUT", "CELL_TIMEOUT", "TESTS_TIMEOUT"]

CALL_TIMEOUT = float(os.environ.get("CSSL_GRADING_CALL_TIMEOUT", "60"))
CELL_TIMEOUT = int(float(os.environ.get("CSSL_GRADING_CELL_TIMEOUT", "120")))
TESTS_TIMEOUT = int(float(os.environ.get("CSSL_GRADING_TESTS_TIMEOUT", "900")))


class GradingTimeout(Exception):
    """A call of the student's code ran longer than the grading time limit."""


class ForbiddenCall(Exception):
    """Raised by a function the question forbids (the swapped code raises RuntimeError with this text)."""


def student(value, name: str):
    """``value`` if it is callable, else an AssertionError that says why ``name`` is missing."""
    if value is None:
        raise AssertionError(f"`{name}` is not defined: run the notebook from the top; a cell that stops with "
                             "an error (for instance a syntax error) leaves it undefined")
    if not callable(value):
        raise AssertionError(f"`{name}` must be a function, got {type(value).__name__}")
    return value


def _raiser_code(qualified: str):
    source = (f"def _forbidden(*args, **kwargs):\n    raise RuntimeError({qualified + ' is forbidden in this question: '!r}"
              f" + 'write the computation yourself')\n")
    namespace: dict = {}
    exec(compile(source, f"<forbidden {qualified}>", "exec"), namespace)
    return namespace["_forbidden"].__code__


@contextlib.contextmanager
def forbidden(*functions):
    """Make each of ``functions`` (plain Python functions) raise RuntimeError while inside the block."""
    saved = []
    try:
        for fn in functions:
            fn = getattr(fn, "__func__", fn)
            code = fn.__code__
            if code.co_freevars:
                raise TypeError(f"cannot forbid {fn.__qualname__}: it is a closure")
            saved.append((fn, code))
            fn.__code__ = _raiser_code(f"{fn.__module__}.{fn.__qualname__}")
        yield
    finally:
        for fn, code in reversed(saved):
            fn.__code__ = code


class _Expired(BaseException):
    """Raised by the timer: a BaseException, so that the student's ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float | None = None):
    """Raise :class:`GradingTimeout` in the block after ``seconds`` (default :data:`CALL_TIMEOUT`).

    Uses SIGALRM, so it works in the main thread of a POSIX process (where a Jupyter kernel runs cells);
    elsewhere the block runs without a limit. The timer raises a BaseException (re-raised every second if
    the student's code catches it with a bare ``except``), turned into :class:`GradingTimeout` here.
    """
    seconds = CALL_TIMEOUT if seconds is None else float(seconds)
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def _expire(signum, frame):
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    except _Expired:
        raise GradingTimeout(f"stopped after {seconds:g} s: the code ran too long (an endless loop?)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_MARK = "GradingResults(Checker.get_results())"  # otter's last cell, which runs every test


def install_cell_timeout(cell_timeout: int | None = None, tests_timeout: int | None = None) -> None:
    """Give otter's notebook execution a per-cell time limit (in the grading process, before grading).

    otter-grader 7 executes a submission with nbconvert's ``ExecutePreprocessor`` and no timeout, so one
    endless cell hangs the grading. After this call, a student cell running longer than ``cell_timeout``
    seconds is interrupted and recorded as an error (grading goes on with the next cell); otter's final
    cell, which runs all tests, gets ``tests_timeout`` seconds.
    """
    import nbconvert.preprocessors as pre
    from traitlets import Bool, Dict

    cell_timeout = CELL_TIMEOUT if cell_timeout is None else int(cell_timeout)
    tests_timeout = TESTS_TIMEOUT if tests_timeout is None else int(tests_timeout)
    base = getattr(pre.ExecutePreprocessor, "_cssl_base", pre.ExecutePreprocessor)

    def _timeout_of(cell):
        return tests_timeout if _MARK in (cell.get("source") or "") else cell_timeout

    class TimedExecutePreprocessor(base):
        _cssl_base = base
        interrupt_on_timeout = Bool(True)
        error_on_timeout = Dict({"ename": "GradingTimeout",
                                 "evalue": f"this cell ran longer than {cell_timeout} s and was stopped",
                                 "traceback": [f"GradingTimeout: this cell ran longer than {cell_timeout} s "
                                               "and was stopped"]})

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.timeout_func = _timeout_of

    pre.ExecutePreprocessor = TimedExecutePreprocessor
