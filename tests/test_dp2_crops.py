"""DeepPrivacy2's crop conventions against the reference's own numbers (shared/dp2/anonymizer_conventions.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from condanon.dp2.crops import crop, expand_box, generation_mask, latent_from_seed, to_generator_input


@pytest.fixture(scope="module")
def conventions(dp2_dir: Path) -> dict[str, Any]:
    return json.loads((dp2_dir / "anonymizer_conventions.json").read_text())


def test_every_reference_crop_is_reproduced(conventions):
    examples = conventions["crop_examples"]
    assert len(examples) == 14
    for example in examples:
        size = example["target_imsize"][0]
        box = example["detection_box_xyxy"]
        expanded = expand_box(box, tuple(example["image_hw"]), example["fdf128_expand"])
        assert list(expanded) == example["expanded_box_xyxy"], example
        mask = generation_mask(box, expanded, size)
        assert mask.shape == (size, size) and set(np.unique(mask)) <= {0.0, 1.0}
        ys, xs = np.nonzero(mask == 0)
        region = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]  # end exclusive
        assert region == example["mask_zero_region_xyxy_in_crop"], example
        assert int((mask == 0).sum()) == example["mask_zero_pixels"]


def test_fdf128_boxes_are_square_inside_the_image_and_contain_the_face(conventions):
    fdf128 = [example for example in conventions["crop_examples"] if example["fdf128_expand"]]
    assert len(fdf128) == 7  # half of the 14 reference crops use the FDF128 rule; a loop over none would check nothing
    for example in fdf128:
        x0, y0, x1, y1 = expand_box(example["detection_box_xyxy"], tuple(example["image_hw"]), True)
        height, width = example["image_hw"]
        bx0, by0, bx1, by1 = example["detection_box_xyxy"]
        assert x1 - x0 == y1 - y0 and 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height
        assert x0 <= bx0 and y0 <= by0 and x1 >= bx1 and y1 >= by1


def test_a_face_wider_than_the_image_falls_back_to_the_simple_rule():
    # a box larger than the image's shorter side fails the FDF rule's checks: simple rule, factor 1.7
    assert expand_box((0, 10, 120, 90), (100, 300), True) == (60 - 102, 50 - 102, 60 + 102, 50 + 102)  # half = 120 * 1.7 / 2


def test_latents_follow_dp2_seed_rule(conventions):
    values = conventions["z_from_seed"]["values"]
    assert set(values) == {"0", "1", "42", "4294967295"}
    for seed, expected in values.items():
        latent = latent_from_seed(int(seed))
        assert latent.shape == (1, 512) and latent.dtype == np.float32
        assert np.array_equal(latent[0], np.asarray(expected, np.float32))


def test_crop_pads_with_black_and_resizes():
    image = np.arange(60 * 80 * 3, dtype=np.uint32).reshape(60, 80, 3).astype(np.uint8)
    inside = crop(image, (10, 5, 42, 37), 32)  # already 32 x 32, inside: the exact pixels
    assert np.array_equal(inside, image[5:37, 10:42])
    padded = crop(np.full((60, 80, 3), 200, np.uint8), (-20, -20, 44, 44), 64)  # 64 x 64 with black outside
    assert padded.shape == (64, 64, 3)
    assert (padded[:20, :] == 0).all() and (padded[:, :20] == 0).all() and (padded[20:, 20:] == 200).all()
    up = crop(np.full((60, 80, 3), 90, np.uint8), (0, 0, 40, 40), 128)  # enlarged (bicubic)
    down = crop(np.full((60, 80, 3), 90, np.uint8), (0, 0, 60, 60), 32)  # shrunk (area)
    assert up.shape == (128, 128, 3) and (up == 90).all() and down.shape == (32, 32, 3) and (down == 90).all()


def test_generator_input_range_and_mask():
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 0] = 255
    mask = np.ones((4, 4), np.float32)
    mask[1:3, 1:3] = 0
    condition, known = to_generator_input(pixels, mask)
    assert condition.shape == (1, 3, 4, 4) and known.shape == (1, 1, 4, 4)
    assert condition[0, 0, 0, 0] == 1.0 and condition[0, 1, 0, 0] == -1.0 and (condition[0, :, 1:3, 1:3] == 0).all()
