"""cssl: the executable companion of "Towards the Generalization of Contrastive Self-Supervised Learning".

One module per concept (see the book's chapters):

* :mod:`cssl.worlds` finite latent-class worlds with exact expectations
* :mod:`cssl.concentration` augmented distance d_A, main parts, sigma(delta) (Definition 1)
* :mod:`cssl.metrics` alignment, divergence, R_eps, nearest-centre error, kNN, linear probe
* :mod:`cssl.bounds` / :mod:`cssl.symbolic` the paper's constants, numeric and in sympy
* :mod:`cssl.losses` InfoNCE, NT-Xent, cross-correlation and their L1/L2 splits
* :mod:`cssl.claims` the claims ledger every chapter reports to
* :mod:`cssl.augment`, :mod:`cssl.data`, :mod:`cssl.models`, :mod:`cssl.train` the experiment engine
* :mod:`cssl.experiments` the paper's grids and profiles; :mod:`cssl.study` Theorem 1's three factors over a grid
"""
__version__ = "0.1.0"

from .worlds import World  # noqa: E402  (the one type every chapter touches)

__all__ = ["World", "__version__"]
