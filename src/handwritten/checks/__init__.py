"""Self-checks for the lessons' exercises, called by nbgrader's test cells.

One module per lesson (``conv`` for lesson 04). Each exercise has a visible check
(``check.corr2d(corr2d)``) and a hidden one that nbgrader adds at grading time
(``check.corr2d_hidden(corr2d, seed=...)``). The oracle is always PyTorch itself.
"""
