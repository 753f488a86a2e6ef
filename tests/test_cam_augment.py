import numpy as np

from coursekit.cam.augment import iaa


def test_imgaug_imports_and_augments_on_this_numpy():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[8:24, 8:16] = 255
    # These augmenters use the numpy aliases imgaug 0.4.0 still refers to.
    seq = iaa.Sequential([iaa.Fliplr(1.0), iaa.ElasticTransformation(alpha=5, sigma=1),
                          iaa.LinearContrast(1.5), iaa.PerspectiveTransform(scale=0.05)])
    out = seq(image=image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    flipped = iaa.Fliplr(1.0)(image=image)
    assert np.array_equal(flipped, image[:, ::-1])
