"""The nbgrader course: notebooks generated from the catalog and the solutions' regions.

``shakyo course build`` writes the course (:mod:`course.build`); the notebooks call
:mod:`course.kernel`, which hands the learner's cells to the same isolated runner as
``shakyo check``.
"""
