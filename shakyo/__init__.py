"""The ``shakyo`` command: the reference's commands and the learner's, side by side.

This package sits above both ``reference`` and ``checks``: the reference never
imports the checks, so the commands that need both (``check``, graduation's
``train``) are wired here.
"""
