"""Lesson 01's answers (``handwritten.reference.pixels``), against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from handwritten.reference import pixels


def test_numbers_grid_counts_row_by_row_from_1():
    assert pixels.numbers_grid(3).tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert pixels.numbers_grid(1).tolist() == [[1]]


def test_bottom_right_doubled_leaves_its_argument_alone():
    t = torch.arange(12).reshape(3, 4)
    assert pixels.bottom_right_doubled(t).tolist() == [[12, 14], [20, 22]]
    assert torch.equal(t, torch.arange(12).reshape(3, 4))


def test_mnist_distance_is_the_mean_absolute_difference_per_image():
    a = torch.zeros(2, 2)
    b = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    assert pixels.mnist_distance(a, b).item() == pytest.approx(1.0)
    batch = torch.stack([a, b, b + 1])                      # (3, 2, 2) against one (2, 2) image
    assert pixels.mnist_distance(batch, a).tolist() == pytest.approx([0.0, 1.0, 1.5])


@pytest.mark.parametrize("dtype,expected", [(torch.uint8, torch.float32), (torch.int64, torch.float32),
                                            (torch.float64, torch.float64)])
def test_mnist_distance_computes_in_float(dtype, expected):
    a = torch.full((2, 2), 3).to(dtype)
    b = torch.full((2, 2), 5).to(dtype)
    d = pixels.mnist_distance(a, b)                         # uint8 3 - 5 would wrap around to 254
    assert d.dtype == expected and d.item() == 2.0


def test_is_3_answers_for_each_image():
    mean3, mean7 = torch.zeros(2, 2), torch.ones(2, 2)
    x = torch.stack([torch.full((2, 2), v) for v in (0.1, 0.9, 0.4)])
    assert pixels.is_3(x, mean3, mean7).tolist() == [True, False, True]
    assert pixels.is_3(x[1], mean3, mean7).item() is False


def test_is_3_scales_images_as_stored():
    mean3, mean7 = torch.zeros(2, 2), torch.full((2, 2), 0.5)
    stored = torch.tensor([[[20, 20], [20, 20]], [[200, 200], [200, 200]]], dtype=torch.uint8)
    assert pixels.is_3(stored, mean3, mean7).tolist() == [True, False]   # 20/255 is near 0, 200/255 near 0.5


def test_validation_accuracy_counts_every_image_once():
    threes = torch.tensor([0.1, 0.2, 0.9])                  # is_3 below: two of the three 3s are right
    sevens = torch.tensor([0.8])                            # and the one 7
    assert pixels.validation_accuracy(threes, sevens, lambda x: x < 0.5) == 0.75


def test_rgb_to_grey_weighs_the_channel_axis():
    images = torch.zeros(2, 3, 1, 2)
    images[:, 0], images[:, 1], images[:, 2] = 1.0, 2.0, 3.0      # red 1, green 2, blue 3 everywhere
    grey = pixels.rgb_to_grey(images)
    assert grey.shape == (2, 1, 2)
    assert grey.flatten().tolist() == pytest.approx([0.299 + 2 * 0.587 + 3 * 0.114] * 4)


def test_distance_matrix_by_hand():
    a = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]]])            # two 1x2 images
    b = torch.tensor([[[0.0, 0.0]], [[0.0, 4.0]], [[6.0, 8.0]]])
    assert torch.allclose(pixels.distance_matrix(a, b), torch.tensor([[0.0, 4, 10], [5, 3, 5]]))


def test_knn_predict_votes_and_breaks_ties_to_the_smallest_label():
    distances = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    labels = torch.tensor([7, 2, 2, 7])
    assert pixels.knn_predict(distances, labels, 1).tolist() == [7, 7]
    assert pixels.knn_predict(distances, labels, 3).tolist() == [2, 2]
    assert pixels.knn_predict(distances, labels, 4).tolist() == [2, 2]   # 2 votes each: the smaller label


def test_confusion_matrix_rows_are_the_actual_digits():
    counts = pixels.confusion_matrix(torch.tensor([3, 3, 9]), torch.tensor([3, 8, 9]))
    assert counts.shape == (10, 10) and int(counts.sum()) == 3
    assert counts[3, 3] == 1 and counts[8, 3] == 1 and counts[9, 9] == 1
