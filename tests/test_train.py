import numpy as np

from overhead import train


def test_shift_augment_keeps_the_real_digits_and_adds_their_shifts():
    x = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5, 1) + 1
    y = np.array([3, 7])
    xa, ya = train.shift_augment(x, y)
    assert xa.shape == (18, 4, 5, 1) and ya.tolist() == [3, 7] * 9
    k = train.SHIFTS.index((0, 0))
    np.testing.assert_array_equal(xa[2 * k:2 * k + 2], x)
    k = train.SHIFTS.index((1, -1))  # down one row, left one column
    down_left = xa[2 * k]
    np.testing.assert_array_equal(down_left[1:, :-1], x[0, :-1, 1:])
    assert not down_left[0].any() and not down_left[:, -1].any()
