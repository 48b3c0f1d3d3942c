"""Understanding challenges whose answers come from the reference itself.

``quiz/questions.toml`` is the one list of questions (English and Japanese).
A question of a *computed* kind (shapes, counts, schedule, metric, data) draws
its numbers per attempt (:mod:`quiz.draw`) and computes its answer by running
the reference (:mod:`quiz.compute`), so the answer is never typed by hand and
changes when the code does. The other kinds hold their answer as a fact: the
right option of a *design* question, the file and lines of the published code
of a *reading the original* question.

Three front ends use the same questions: ``shakyo quiz`` in the terminal
(:mod:`quiz.cli`), the Quiz page of the study site (``sitegen/quiz.py``) and,
for the course, notebook cells (:mod:`quiz.notebook`).
"""
