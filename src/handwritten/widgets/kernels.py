"""Lesson 04, convolutions by hand: the kernel playground. Edit a 3x3 kernel (or pick a preset), pick a digit,
see ``corr2d(digit, kernel)``: the course's ``corr2d`` (``handwritten.reference.convolution``), or the
student's own."""

from __future__ import annotations

import ipywidgets as widgets
import torch

from ..plots.common import to_png
from ..plots.kernels import kernel_figure, update_kernel_figure
from ..reference.convolution import corr2d as reference_corr2d

KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "vertical edges [1, -1]": [[0, 0, 0], [0, 1, -1], [0, 0, 0]],
    "horizontal edges": [[0, 0, 0], [0, 1, 0], [0, -1, 0]],
    "Sobel x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "Sobel y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "Laplacian (outlines)": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "diagonal": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
}


class KernelPlayground(widgets.VBox):
    """Edit a 3x3 kernel (or pick a preset), pick a digit, see ``corr2d(digit, kernel)``.

    ``corr2d`` defaults to the course's; pass your own to watch it at work.
    """

    def __init__(self, images: torch.Tensor, corr2d=None, kernel: str = "vertical edges [1, -1]"):
        self.images = images.detach().float() / (255.0 if images.dtype == torch.uint8 else 1.0)
        self.corr2d = corr2d or reference_corr2d
        self.preset = widgets.Dropdown(options=["(custom)", *KERNELS], value=kernel,
                                       description="kernel")
        self.cells = [widgets.FloatText(value=0.0, step=0.5, continuous_update=False,
                                        layout=widgets.Layout(width="70px")) for _ in range(9)]
        self.index = widgets.IntSlider(value=0, min=0, max=len(self.images) - 1,
                                       description="digit", continuous_update=False)
        self.image = widgets.Image(format="png")
        self.status = widgets.Label()
        self._holding = False
        self._set_cells(KERNELS[kernel])
        self.output = torch.zeros(self.images.shape[1] - 2, self.images.shape[2] - 2)
        self._fig = kernel_figure(self._digit(), self.kernel, self.output)
        self.redraw()
        self.preset.observe(self._on_preset, "value")
        for cell in self.cells:
            cell.observe(self._on_cell, "value")
        self.index.observe(lambda change: self.redraw(), "value")
        grid = widgets.GridBox(self.cells, layout=widgets.Layout(
            grid_template_columns="repeat(3, 76px)", grid_gap="2px"))
        controls = widgets.HBox([widgets.VBox([self.preset, grid, self.index, self.status])])
        super().__init__([controls, self.image])
        self.add_class("handwritten-kernel-playground")

    @property
    def kernel(self) -> torch.Tensor:
        return torch.tensor([cell.value for cell in self.cells], dtype=torch.float32).reshape(3, 3)

    def _digit(self):
        return self.images[self.index.value]

    def _set_cells(self, values):
        self._holding = True  # one redraw for nine changes
        try:
            for cell, value in zip(self.cells, torch.tensor(values, dtype=torch.float32).flatten()):
                cell.value = round(float(value), 4)
        finally:
            self._holding = False

    def _on_preset(self, change):
        if change["new"] in KERNELS:
            self._set_cells(KERNELS[change["new"]])
            self.redraw()

    def _on_cell(self, change):
        if self._holding:
            return
        if self.preset.value != "(custom)" and not torch.equal(
                self.kernel, torch.tensor(KERNELS[self.preset.value], dtype=torch.float32)):
            self._holding = True
            self.preset.value = "(custom)"
            self._holding = False
        self.redraw()

    def _compute(self):
        return self.corr2d(self._digit(), self.kernel).detach()

    def _draw(self):
        update_kernel_figure(self._fig, self._digit(), self.kernel, self.output)
        self.image.value = to_png(self._fig)
        self.status.value = (f"output {tuple(self.output.shape)}, "
                             f"min {float(self.output.min()):.2f}, max {float(self.output.max()):.2f}")

    def redraw(self):
        try:
            self.output = self._compute()
        except Exception as error:  # a student's corr2d may raise: say so, keep the widget alive
            self.output = torch.zeros_like(self.output)
            self._draw()
            self.status.value = f"corr2d raised {type(error).__name__}: {error}"
            return
        self._draw()
