"""``AnswersOnly``: an autograde step after which the grading kernel runs no student code.

nbgrader restores locked and graded cells from the source before it executes a
submission, but it runs every other code cell as it was submitted, in a kernel that
belongs to the instructor. With this preprocessor added to
``Autograde.sanitize_preprocessors`` (see ``nbgrader_config.py``), a code cell the
source does not have becomes a raw cell (shown in the feedback, never run), and each
answer cell gets back its source's ``%%answer ID K`` line, so its body stays text that
only the runner's sandboxed child executes.
"""

from __future__ import annotations

import nbformat
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

NOT_RUN = "# not run while grading: this cell is not in the course's notebook\n"


class AnswersOnly(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            found = gb.find_notebook(info["notebook"], info["assignment"])
            source = {c.name: c.source for c in found.source_cells}
        for k, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            nbg = cell.metadata.get("nbgrader", {})
            name = nbg.get("grade_id")
            if name not in source:
                nb.cells[k] = nbformat.v4.new_raw_cell(NOT_RUN + cell.source)
            elif nbg.get("solution"):
                head = source[name].split("\n", 1)[0]
                lines = cell.source.split("\n")
                if lines and lines[0].lstrip().startswith("%%"):
                    lines = lines[1:]
                cell.source = "\n".join([head, *lines])
        return nb, resources
