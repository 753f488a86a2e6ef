"""Notebook 06's generated balls: determinism, geometry, pixels, on-disk format, errors."""

import json

import numpy as np
import pytest

from coursekit.balls import data as balls
from coursekit.data.errors import DatasetFormatError, DatasetMissingError


def test_generation_is_deterministic_by_seed():
    a, b, c = (balls.generate_images(40, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.boxes, c.boxes)
    s, t = balls.generate_sequences(30, seed=3), balls.generate_sequences(30, seed=3)
    assert np.array_equal(s.boxes, t.boxes) and np.array_equal(s.presence, t.presence)
    assert not np.array_equal(s.boxes, balls.generate_sequences(30, seed=4).boxes)


def test_three_distinct_colours_and_boxes_only_where_present():
    data = balls.generate_images(200, seed=0)
    seqs = balls.generate_sequences(100, seed=0)
    for presence, boxes in ((data.presence, data.boxes), (seqs.presence, seqs.boxes[:, 5])):
        assert set(np.unique(presence)) == {0.0, 1.0}
        assert (presence.sum(1) == 3).all()
        has_box = (boxes != 0).any(-1)
        assert np.array_equal(has_box, presence > 0)
    assert seqs.boxes.shape == (100, balls.STEPS, 9, 4)


def test_boxes_inside_the_image_at_every_step():
    data = balls.generate_images(300, seed=1)
    seqs = balls.generate_sequences(300, seed=1)
    for boxes, presence in ((data.boxes, data.presence), (seqs.boxes, seqs.presence[:, None])):
        present = np.broadcast_to(presence > 0, boxes.shape[:-1])
        b = boxes[present]
        assert (b >= 0).all() and (b <= balls.SIZE).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


def test_balls_move_and_slow_down_on_average():
    seqs = balls.generate_sequences(500, seed=2)
    boxes = balls.present_boxes(seqs.boxes, seqs.presence)
    speed = np.linalg.norm(np.diff(boxes[..., :2], axis=1), axis=-1).mean(axis=(0, 2))
    assert speed[0] > 1.0  # pixels per step
    assert speed[-1] < speed[0]  # friction and inelastic bounces take energy away


def test_boxes_match_the_rendered_pixels():
    rng = np.random.default_rng(0)
    data = balls.generate_images(60, seed=5)
    colors = np.sort(np.argsort(-data.presence, axis=1)[:, :3], axis=1)
    compact = balls.present_boxes(data.boxes, data.presence)
    images = balls.render(colors, compact)  # before JPEG: exact pixels
    masks = balls.ball_masks(compact)  # (n, 3, 100, 100)
    painted = (images != np.array(balls.BACKGROUND, np.uint8)).any(-1)
    assert np.array_equal(painted, masks.any(1))
    for i in rng.choice(len(data), 20, replace=False):
        for k in range(3):
            rows, cols = np.nonzero(masks[i, k])
            x1, y1, x2, y2 = compact[i, k]
            assert abs(cols.min() - x1) <= 1 and abs(cols.max() + 1 - x2) <= 1
            assert abs(rows.min() - y1) <= 1 and abs(rows.max() + 1 - y2) <= 1
    # The centre pixel of each ball has its colour (the brightest point of the shading).
    cx = ((compact[..., 0] + compact[..., 2]) / 2).astype(int)
    cy = ((compact[..., 1] + compact[..., 3]) / 2).astype(int)
    centre = images[np.arange(60)[:, None], cy, cx].astype(float)
    expected = balls.RGB[colors]
    assert np.abs(centre - expected).max() <= 0.35 * 255 * 0.05 + 1


def test_images_round_trip_through_the_course_format(tmp_path):
    data = balls.generate_images(12, seed=0)
    balls.write_images(data, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[:2] == ["img_00000.jpg", "img_00001.jpg"] and "p_bb_00011.npy" in names
    label = np.load(tmp_path / "p_bb_00003.npy")
    assert label.shape == (9, 5) and np.array_equal(label[:, 0], data.presence[3])
    back = balls.read_images(tmp_path)
    assert np.array_equal(back.presence, data.presence) and np.array_equal(back.boxes, data.boxes)
    assert np.abs(back.images.astype(int) - data.images).mean() < 2  # JPEG, quality 95
    assert len(balls.read_images(tmp_path, limit=5)) == 5


def test_sequences_round_trip_through_the_course_format(tmp_path):
    seqs = balls.generate_sequences(7, seed=0)
    balls.write_sequences(seqs, tmp_path)
    assert np.load(tmp_path / "seq_bb_00006.npy").shape == (20, 9, 4)
    assert np.load(tmp_path / "p_00006.npy").shape == (9,)
    back = balls.read_sequences(tmp_path)
    assert np.array_equal(back.boxes, seqs.boxes) and np.array_equal(back.presence, seqs.presence)


def test_bad_files_get_errors_that_name_them(tmp_path):
    with pytest.raises(DatasetMissingError, match="img_NNNNN.jpg"):
        balls.read_images(tmp_path)
    balls.write_images(balls.generate_images(3, seed=0), tmp_path)
    np.save(tmp_path / "p_bb_00001.npy", np.zeros((9, 4)))
    with pytest.raises(DatasetFormatError, match=r"p_bb_00001\.npy.*\(9, 5\)"):
        balls.read_images(tmp_path)
    (tmp_path / "p_bb_00001.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"p_bb_00001\.npy is missing"):
        balls.read_images(tmp_path)


def test_ensure_generates_once_and_never_touches_original_files(tmp_path):
    data, source = balls.ensure_images(10, seed=1, root=tmp_path)
    folder = tmp_path / balls.IMAGES_FOLDER
    assert source == "generated"
    assert json.loads((folder / balls.GENERATED).read_text())["n"] == 10
    again, source = balls.ensure_images(10, seed=1, root=tmp_path)
    assert source == "generated" and np.array_equal(again.boxes, data.boxes)
    # The first call already returns the pixels of the JPEG files, as every later call does.
    assert np.array_equal(again.images, data.images)
    assert not np.array_equal(data.images, balls.generate_images(10, seed=1).images)
    bigger, _ = balls.ensure_images(14, seed=1, root=tmp_path)  # another size: regenerated
    assert len(bigger) == 14 and len(list(folder.glob("img_*.jpg"))) == 14
    original = tmp_path / "orig"
    balls.write_images(balls.generate_images(6, seed=9), original / balls.IMAGES_FOLDER)
    read, source = balls.ensure_images(4, seed=1, root=original)
    assert source == "original" and len(read) == 4
    assert len(list((original / balls.IMAGES_FOLDER).glob("img_*.jpg"))) == 6


def test_ensure_sequences_in_smoke_mode_writes_under_the_fixture_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    monkeypatch.setenv("COURSEKIT_FIXTURES", str(tmp_path / "fixtures"))
    seqs, source = balls.ensure_sequences(5, seed=0)
    assert source == "generated" and len(seqs) == 5
    assert (tmp_path / "fixtures" / balls.SEQUENCES_FOLDER / "seq_bb_00004.npy").exists()
    again, source = balls.ensure_sequences(5, seed=0)  # read back from the files
    assert source == "generated" and np.array_equal(again.boxes, seqs.boxes)
    assert set(again.physics) == set(seqs.physics)  # hidden parameters redrawn from the seed
    assert all(np.array_equal(again.physics[k], seqs.physics[k]) for k in seqs.physics)


def test_split_indices_are_disjoint_and_cover_everything():
    split = balls.split_indices(101, (0.8, 0.1, 0.1), seed=0)
    joined = np.concatenate(list(split.values()))
    assert sorted(joined.tolist()) == list(range(101))
    assert [len(v) for v in split.values()] == [81, 10, 10]
    assert np.array_equal(split["val"], balls.split_indices(101, seed=0)["val"])
    with pytest.raises(ValueError):
        balls.split_indices(10, (0.5, 0.5, 0.0))


def test_present_boxes_keeps_the_three_balls_in_colour_order():
    seqs = balls.generate_sequences(4, seed=0)
    compact = balls.present_boxes(seqs.boxes, seqs.presence)
    colors = np.nonzero(seqs.presence[0])[0]
    assert compact.shape == (4, 20, 3, 4)
    assert np.array_equal(compact[0, :, 1], seqs.boxes[0, :, colors[1]])


def test_smoke_data_goes_to_a_marked_fixture_root(tmp_data, monkeypatch):
    # Notebook 06 run first in a fresh clone must mark the fixture root, or the image
    # fixtures that come next would refuse an unmarked, non-empty folder.
    from coursekit.data.fixtures import ensure_fixtures, is_fixture_root

    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    balls.ensure_images(5, seed=0)
    balls.ensure_sequences(4, seed=0)
    assert is_fixture_root(tmp_data / "fixtures")
    assert (tmp_data / "fixtures" / balls.IMAGES_FOLDER).is_dir()
    assert ensure_fixtures() == tmp_data / "fixtures"


def test_smoke_data_refuses_an_unmarked_fixture_root(tmp_data, monkeypatch):
    (tmp_data / "fixtures").mkdir()
    (tmp_data / "fixtures" / "real.bin").write_bytes(b"\0")
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    with pytest.raises(ValueError, match="marker"):
        balls.ensure_images(5, seed=0)
