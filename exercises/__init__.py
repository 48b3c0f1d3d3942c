"""Your copy of the CoaT-ULSTM solution: fill the regions marked ``BEGIN EXERCISE``.

``shakyo list`` shows the exercises in order, ``shakyo check ID`` grades one,
``shakyo hint ID`` helps. The files here are generated from ``solutions/``
(``python -m checks.stubs``); ``shakyo reset ID`` restores a pristine stub.
The list of exercises is ``catalog.toml``.
"""
