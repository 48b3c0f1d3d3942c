"""Complete transcriptions of the exercises, written as a learner would.

Each file mirrors one in ``exercises/``; the code between ``# BEGIN EXERCISE id``
and ``# END EXERCISE id`` is what the learner writes. The stubs are generated
from these files (``python -m checks.stubs``). Nothing here imports
``reference/``: these are independent re-typings graded against it.
"""
