"""The course's answers to lesson 06 (handwritten.reference.inside_cnn): the split, rightness, predictions one
image at a time, the training loop and the shifted digits."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import SubsetRandomSampler, TensorDataset

from handwritten.models import ConvNet
from handwritten.reference.inside_cnn import (
    SHIFT_DIRECTIONS,
    as_mnist,
    predict_one_by_one,
    rightness,
    shift_image,
    split_test_set,
    train,
)


def _numbered(n):
    return TensorDataset(torch.zeros(n, 1, 2, 2), torch.arange(n))


def test_split_test_set_takes_the_first_n_val_for_validation_and_the_rest_for_test():
    dataset = _numbered(10)
    validation, test = split_test_set(dataset, 4, batch_size=3)
    assert isinstance(validation.sampler, SubsetRandomSampler) and isinstance(test.sampler, SubsetRandomSampler)
    assert validation.batch_size == test.batch_size == 3
    assert sorted(int(i) for _, labels in validation for i in labels) == [0, 1, 2, 3]
    assert sorted(int(i) for _, labels in test for i in labels) == [4, 5, 6, 7, 8, 9]
    assert split_test_set(dataset, 4)[0].batch_size == 64


def test_rightness_counts_the_rows_whose_largest_score_is_the_label():
    scores = torch.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [3.0, 0.0, 4.0]], requires_grad=True)
    right, total = rightness(scores, torch.tensor([1, 1, 2, 0]))
    assert int(right) == 2 and total == 4


def test_predict_one_by_one_gives_the_batch_predictions_of_a_correct_network_and_leaves_it_in_eval():
    torch.manual_seed(0)
    net = ConvNet().train()
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    got = predict_one_by_one(net, images)
    assert not net.training
    with torch.no_grad():
        assert torch.equal(got, net(images).argmax(1))
    assert got.shape == (5,)


def test_train_records_every_record_every_batches_and_snapshots_copies():
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(100, 1, 28, 28, generator=g), torch.randint(0, 10, (100,), generator=g)
    train_loader = torch.utils.data.DataLoader(TensorDataset(images, labels), batch_size=10)  # 10 batches
    validation_loader = torch.utils.data.DataLoader(TensorDataset(images[:30], labels[:30]), batch_size=15)
    torch.manual_seed(0)
    net = ConvNet()
    before = net.conv1.weight.detach().clone()
    record, weights = train(net, train_loader, validation_loader, epochs=2, lr=0.05, record_every=3)
    assert len(record) == len(weights) == 8  # batches 0, 3, 6 and 9 of each of the two epochs
    assert all(0 <= value <= 100 for entry in record for value in entry)
    net.eval()
    with torch.no_grad():
        right = int((net(images[:30]).argmax(1) == labels[:30]).sum())
    assert record[-1][1] == pytest.approx(100 - 100 * right / 30)  # the last record is after the last step
    assert [tuple(w.shape) for w in weights[0]] == [(4, 1, 5, 5), (4,), (8, 4, 5, 5), (8,)]
    assert weights[-1][0].data_ptr() != net.conv1.weight.data_ptr()
    assert not torch.equal(weights[0][0], weights[-1][0]) and not torch.equal(before, net.conv1.weight)


def test_shift_image_moves_left_as_the_notes_double_loop_does():
    image = torch.arange(1.0, 31.0).reshape(5, 6)
    expected = torch.zeros_like(image)
    for i in range(5):
        for j in range(6 - 2):
            expected[i, j] = image[i, j + 2]
    assert torch.equal(shift_image(image, 2, "left"), expected)
    assert torch.equal(shift_image(image, 0), image)
    assert not shift_image(image, 6).any()


@pytest.mark.parametrize("direction", SHIFT_DIRECTIONS)
def test_shift_image_keeps_leading_dimensions(direction):
    batch = torch.rand(3, 1, 7, 9)
    moved = shift_image(batch, 2, direction)
    assert moved.shape == batch.shape
    assert all(torch.equal(moved[k], shift_image(batch[k], 2, direction)) for k in range(3))


def test_shift_image_refuses_a_negative_shift_and_an_unknown_direction():
    with pytest.raises(ValueError):
        shift_image(torch.zeros(3, 3), -1)
    with pytest.raises(ValueError):
        shift_image(torch.zeros(3, 3), 1, "sideways")


def _centre_and_box(image):
    ys, xs = torch.meshgrid(torch.arange(28) + 0.5, torch.arange(28) + 0.5, indexing="ij")
    total = image.sum()
    inked = (image > 0.05).nonzero()
    extent = (inked.max(0).values - inked.min(0).values + 1).tolist()
    return (float((ys * image).sum() / total), float((xs * image).sum() / total)), extent


@pytest.mark.parametrize("where", [(30, 40), (150, 200), (200, 20)])
def test_as_mnist_puts_any_drawing_in_a_20x20_box_centred_by_its_mass(where):
    canvas = torch.zeros(280, 280)
    top, left = where
    canvas[top:top + 60, left:left + 25] = 1.0          # a tall stroke
    canvas[top:top + 8, left:left + 45] = 1.0           # and a bar across its top: a 7, roughly
    image = as_mnist(canvas * 255)
    assert image.shape == (28, 28) and 0 <= float(image.min()) and float(image.max()) <= 1
    (cy, cx), extent = _centre_and_box(image)
    assert max(extent) in (20, 21) and abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75


def test_as_mnist_keeps_a_blank_drawing_blank_and_an_mnist_digit_nearly_as_it_was():
    assert torch.equal(as_mnist(torch.zeros(100, 100)), torch.zeros(28, 28))
    from handwritten.data import load_mnist
    digits = load_mnist().test_images[:20].float() / 255
    similar = [float(torch.nn.functional.cosine_similarity(as_mnist(d).flatten(), d.flatten(), dim=0)) for d in digits]
    assert sum(similar) / len(similar) > 0.85, similar
