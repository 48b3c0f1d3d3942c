"""The first diverging submodule, when the reference's module and the learner's live in
different processes.

The learner's module never enters the grader's process, so its activations are
recorded where it lives: when a model comparison fails, the runner replays the check
(the replay that also feeds the known-mistake diagnosis) with ``divergence_at`` set to
that comparison's ordinal; there, the learner's side runs
:func:`reference.diagnose.record_run` on its module and sends the recording, the
grader's side records the reference's module on the same inputs, and
:func:`reference.diagnose.compare_recordings` names the first module that differs.
Both sides then go on with the replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.ladder import Ladder
from checks.tolerances import Tolerance
from checks.wire import decode, encode


def _format(report: Any) -> str:
    lines = ["(A = the reference, B = yours)", *str(report).splitlines()]
    return "\n".join("  " + line for line in lines)


def exchange(
    c: Ladder,
    models: tuple[Any, Any],
    inputs: Any,
    backward: bool,
    loss_fn: Callable | None,
    tol: Tolerance,
) -> None:
    """At the comparison ``c.divergence_at`` of a replay: record both modules and compare."""
    from reference.diagnose import compare_recordings, record_run

    kw = dict(backward=backward, loss_fn=loss_fn)
    if c.side == "learner":
        data = None
        try:
            from reference.diagnose import recording_to_data

            data = recording_to_data(record_run(models[1], inputs, **kw))
        finally:
            c.channel.send(("rec", c.divergence_at, encode(data)))
        return
    if c.side == "grader":
        from reference.diagnose import recording_from_data

        message = c.channel.receive_kind("rec")
        try:
            data = decode(message[2])
            if data is None:
                c.divergence_text = "  (could not record your module's activations)"
            else:
                report = compare_recordings(
                    record_run(models[0], inputs, **kw),
                    recording_from_data(data),
                    atol=tol.atol,
                    rtol=tol.rtol,
                    backward=backward,
                    given=c.exercise.given_modules,
                )
                c.divergence_text = _format(report)
        except Exception as e:  # a diagnosis must never hide the failure it explains
            c.divergence_text = (
                f"  (could not locate the diverging module: {type(e).__name__}: {e})"
            )


def local_report(
    c: Ladder,
    models: tuple[Any, Any],
    inputs: Any,
    backward: bool,
    loss_fn: Callable | None,
    tol: Tolerance,
) -> str:
    """Both modules in this process (side ``local``): compare them at once."""
    from reference.diagnose import first_divergence

    try:
        report = first_divergence(
            models[0], models[1], inputs, atol=tol.atol, rtol=tol.rtol, backward=backward,
            loss_fn=loss_fn, given=c.exercise.given_modules,
        )  # fmt: skip
    except Exception as e:  # a diagnosis must never hide the failure it explains
        return f"  (could not locate the diverging module: {type(e).__name__}: {e})"
    return _format(report)
