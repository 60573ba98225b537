"""The residual-tumour segmenter keeps the epoch with the best validation Dice (or the last, as the paper) and
reports the Dice of the weights it keeps (issue 15: a DeepLabv3 whose last epoch collapsed was reported as 0)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtresponse.residual.segmentation import (  # noqa: E402
    SegmentationSlices, SegmenterConfig, evaluate_segmenter, load_segmenter, save_segmenter, train_segmenter)


def squares(n: int, seed: int) -> SegmentationSlices:
    """Bright squares on noise: what a tiny U-Net learns in a few epochs."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.3, size=(n, 32, 32)).astype(np.float32)
    masks = np.zeros((n, 32, 32), bool)
    for i in range(n):
        y, x = rng.integers(4, 20, size=2)
        masks[i, y:y + 8, x:x + 8] = True
        images[i][masks[i]] += 0.6
    return SegmentationSlices(images, masks)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_kept_epoch_and_its_dice(keep, tmp_path):
    torch.manual_seed(0)
    config = SegmenterConfig(architecture="unet", input_size=32, epochs=4, batch_size=8, learning_rate=0.05,
                             unet_features=(4, 4, 8, 8, 16, 4), keep=keep)  # a high rate: the Dice goes up and down
    validation = squares(8, 1)
    segmenter = train_segmenter(squares(24, 0), validation, config)
    dices = [record["validation_dice"] for record in segmenter.history]
    expected = int(np.argmax(dices)) + 1 if keep == "best" else len(dices)
    assert segmenter.epoch == expected, dices
    assert segmenter.validation_dice == dices[expected - 1]
    # the weights are those of the kept epoch: scoring them again gives its Dice
    assert evaluate_segmenter(segmenter, validation)["dice_mean"] == pytest.approx(dices[expected - 1], abs=1e-6)
    again = load_segmenter(save_segmenter(tmp_path / "s.pt", segmenter))
    assert again.epoch == expected and again.validation_dice == pytest.approx(segmenter.validation_dice)


def test_keep_is_best_or_last():
    from rtresponse.errors import InputError

    with pytest.raises(InputError, match="keep must be 'best' or 'last'"):
        SegmenterConfig(keep="first")
