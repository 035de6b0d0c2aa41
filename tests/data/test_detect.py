"""FaceDetector: the largest face of real LFW photos pasted at known places, the crop around it, the
errors (no face, no OpenCV, an OpenCV without cascades) and use from several threads."""

from __future__ import annotations

import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.data.detect import FaceDetector, expand_box
from siamese.errors import ConfigError, ImageError
from tests.conftest import face_on_canvas, lfw_photo

pytest.importorskip("cv2")

PEOPLE = ("Aaron_Eckhart", "Abba_Eban", "Aaron_Sorkin")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("offset", [(300, 150), (20, 210)])
def test_the_face_is_found_where_the_photo_was_pasted(detector, lfw: Path, person, offset) -> None:
    canvas = face_on_canvas(lfw_photo(lfw, person), offset)
    box = detector.find(canvas)
    assert box is not None and all(isinstance(v, int) for v in box)
    cx, cy = _centre(box)
    # LFW photos are 250x250 with the face in the middle, about 100-130 pixels wide
    assert abs(cx - (offset[0] + 125)) < 30 and abs(cy - (offset[1] + 125)) < 30
    assert 60 <= box[2] <= 200 and 60 <= box[3] <= 200
    assert detector.find(canvas.convert("L")) == box  # the cascade sees grey levels either way


def test_the_largest_of_several_faces_wins(detector, lfw: Path) -> None:
    canvas = face_on_canvas(lfw_photo(lfw, "Abba_Eban"), (0, 100), size=(900, 450), scale=0.6)
    with Image.open(lfw_photo(lfw, "Aaron_Eckhart")) as big:
        canvas.paste(big.convert("RGB"), (500, 100))  # full size: the larger face
    small_alone = face_on_canvas(lfw_photo(lfw, "Abba_Eban"), (0, 100), size=(400, 450), scale=0.6)
    assert detector.find(small_alone) is not None  # the small face is found on its own
    cx, _ = _centre(detector.find(canvas))
    assert 500 < cx < 750


def test_the_crop_is_the_face_widened_by_the_margin(lfw: Path) -> None:
    canvas = face_on_canvas(lfw_photo(lfw, "Aaron_Eckhart"), (300, 150))
    for margin in (0.0, 0.25, 0.5):
        detector = FaceDetector(margin=margin)
        x, y, w, h = face = detector.find(canvas)
        crop, box = detector.crop(canvas)
        assert box == (round(x - margin * w), round(y - margin * h), *box[2:])
        assert box == expand_box(face, margin, canvas.size)
        assert crop.size == box[2:] and crop.mode == "RGB"
        np.testing.assert_array_equal(
            np.asarray(crop), np.asarray(canvas)[box[1] : box[1] + box[3], box[0] : box[0] + box[2]]
        )
    crop, _ = FaceDetector().crop(canvas.convert("L"), "grey.png")
    assert crop.mode == "L"


def test_the_crop_is_clipped_to_the_image(lfw: Path) -> None:
    with Image.open(lfw_photo(lfw, "Aaron_Eckhart")) as img:
        photo = img.convert("RGB")
    crop, box = FaceDetector(margin=1.0).crop(photo)  # the face's own size again on each side
    assert box == (0, 0, 250, 250) and crop.size == (250, 250)


def test_expand_box_by_hand() -> None:
    assert expand_box((10, 20, 40, 40), 0.25, (100, 100)) == (0, 10, 60, 60)
    assert expand_box((10, 20, 40, 40), 0.0, (100, 100)) == (10, 20, 40, 40)
    assert expand_box((50, 60, 40, 40), 0.5, (100, 100)) == (30, 40, 70, 60)  # clipped right and bottom


def test_min_size_skips_smaller_faces(lfw: Path) -> None:
    canvas = face_on_canvas(lfw_photo(lfw, "Aaron_Eckhart"), (200, 100), size=(400, 300), scale=0.5)
    face = FaceDetector().find(canvas)
    assert face is not None and face[2] < 80
    assert FaceDetector(min_size=80).find(canvas) is None


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_blank_image_has_no_face(detector, mode) -> None:
    blank = Image.new(mode, (320, 240), 255 if mode == "L" else (255, 255, 255))
    assert detector.find(blank) is None
    with pytest.raises(ImageError, match=r"^no face found in blank\.png$"):
        detector.crop(blank, "blank.png")
    with pytest.raises(ImageError, match=r"^no face found in image$"):
        detector.crop(blank)


def test_one_detector_serves_several_threads(detector, lfw: Path) -> None:
    canvases = [face_on_canvas(lfw_photo(lfw, p), (40 * k, 30 * k)) for k, p in enumerate(PEOPLE)]
    expected = [detector.find(c) for c in canvases]
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(detector.find, canvases * 8))
    assert found == expected * 8


def test_without_opencv_the_error_says_which_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    with pytest.raises(ConfigError) as info:
        FaceDetector()
    assert str(info.value) == "face detection needs the detect extra: pip install 'siamese[detect]'"


def test_an_opencv_without_haar_cascades_is_refused(monkeypatch, tmp_path: Path) -> None:
    empty = types.SimpleNamespace(__version__="5.1.0", data=types.SimpleNamespace(haarcascades=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "cv2", empty)
    with pytest.raises(ConfigError, match=r"OpenCV 5\.1\.0 has no Haar face cascade.*<5"):
        FaceDetector()


@pytest.mark.parametrize("options", [{"margin": -0.1}, {"margin": float("nan")}, {"min_size": 0}])
def test_bad_options_are_config_errors(options) -> None:
    with pytest.raises(ConfigError):
        FaceDetector(**options)
