"""68-point landmarks on real faces: inside the face, in anatomical order, consistent with YuNet's 5."""

from __future__ import annotations

import numpy as np
import pytest

from condanon.detection import DETECTORS
from condanon.landmarks import LANDMARKERS, five_from_68


@pytest.fixture(scope="module", params=["astronaut.jpg", "two_people.jpg"])
def faces(request, scenes, load):
    image = load(scenes / request.param)
    found = DETECTORS.create("yunet").detect(image)
    assert found, request.param
    LANDMARKERS.create("dlib68").landmarks(image, found)
    return request.param, found


def test_68_points_lie_inside_the_grown_face_box(faces):
    scene, found = faces
    for face in found:
        points = face.landmarks68
        assert points is not None and points.shape == (68, 2) and points.dtype == np.float32
        grown = face.box.scaled(1.2)
        assert np.all((points[:, 0] >= grown.x1) & (points[:, 0] <= grown.x2)), scene
        assert np.all((points[:, 1] >= grown.y1) & (points[:, 1] <= grown.y2)), scene
        # they spread over the face, not collapsed to a point
        assert np.ptp(points[:, 0]) > 0.5 * face.box.width
        assert np.ptp(points[:, 1]) > 0.5 * face.box.height


def test_eyes_above_nose_above_mouth(faces):
    scene, found = faces
    for face in found:
        points = face.landmarks68
        eyes, nose_tip, mouth = points[36:48], points[30], points[48:68]
        assert eyes[:, 1].max() < nose_tip[1] < mouth[:, 1].min(), scene
        # the subject's right eye (36-41) is on the image's left
        assert points[36:42, 0].mean() < points[42:48, 0].mean()
        # the jaw (0-16) runs from the image's left to its right, below the eyes
        assert points[0, 0] < points[8, 0] < points[16, 0]
        assert points[8, 1] > mouth[:, 1].max()


def test_yunet_eyes_match_68_point_eye_centres(faces):
    """YuNet's boxes are converted to dlib's convention before the predictor runs; with a wrong
    conversion the predicted eyes drift away from the eyes YuNet found."""
    scene, found = faces
    for face in found:
        assert face.detector == "yunet"
        five = face.landmarks5
        derived = five_from_68(face.landmarks68)
        for index in (0, 1):  # right eye, left eye
            distance = float(np.linalg.norm(five[index] - derived[index]))
            assert distance < 0.15 * face.box.width, (scene, index, distance, face.box.width)


def test_landmarks_fill_missing_five_points(scenes, load):
    """HOG and Haar faces have no landmarks of their own: the landmarker supplies 5 points from its 68."""
    image = load(scenes / "astronaut.jpg")
    found = DETECTORS.create("hog").detect(image)[:1]  # best score first: the astronaut's face
    assert found and found[0].landmarks5 is None
    LANDMARKERS.create("dlib68").landmarks(image, found)
    np.testing.assert_allclose(found[0].landmarks5, five_from_68(found[0].landmarks68))
    reference = DETECTORS.create("yunet").detect(image)[0].landmarks5
    assert np.linalg.norm(found[0].landmarks5[:2] - reference[:2], axis=1).max() < 0.15 * found[0].box.width
