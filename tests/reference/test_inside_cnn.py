"""The course's answers to lesson 06 (handwritten.reference.inside_cnn): the split, rightness, predictions one
image at a time, the training loop and the shifted digits."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import SubsetRandomSampler, TensorDataset

from handwritten.models import ConvNet
from handwritten.reference.inside_cnn import (
    SHIFT_DIRECTIONS,
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
