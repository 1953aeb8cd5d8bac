"""Handwritten: deep learning on handwritten digits, written by hand.

The helper package behind the course's lessons: data (``handwritten.data``), the
first cell of every lesson (``handwritten.env``), the self-checks that nbgrader's
test cells call (``handwritten.checks``), plots and widgets, and the instructor's
grading pipeline (``handwritten.grading``).
"""

__version__ = "0.1.0"
