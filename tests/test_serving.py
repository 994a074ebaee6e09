"""A real ``mlflow models serve`` process serving the registered champion: good and bad requests."""

import base64
import io

import pytest
import requests
from PIL import Image

from mtl.serve import model_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_registered_model, tmp_path_factory):
    uri, _ = tiny_registered_model
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with model_server("models:/utkface-mtl@champion", log, env={"MLFLOW_TRACKING_URI": uri}) as url:
        yield url


def _post(url, images, column="image"):
    return requests.post(f"{url}/invocations", json={"dataframe_split": {"columns": [column], "data": [[i] for i in images]}},
                         timeout=60)


@pytest.fixture(scope="module")
def faces(small_copy_module):
    return [base64.b64encode(p.read_bytes()).decode() for p in sorted(small_copy_module.iterdir())[:3]]


@pytest.fixture(scope="module")
def small_copy_module(utkface_dir, real_names, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    for name in [n for n in real_names if n.count("_") == 3][::2000][:3]:
        (folder / name).write_bytes((utkface_dir / name).read_bytes())
    return folder


def test_real_faces_get_sane_answers(server, faces):
    reply = _post(server, faces)
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert len(predictions) == 3
    for p in predictions:
        assert 1 <= p["age"] <= 116
        assert p["age_low"] <= p["age"] <= p["age_high"]
        assert 0 <= p["female_probability"] <= 1
        assert p["gender"] in ("male", "female")


def _bomb() -> str:
    buf = io.BytesIO()
    Image.new("L", (12000, 6000)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _png(mode, size):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


BAD_REQUESTS = {
    "invalid base64": (lambda faces: {"dataframe_split": {"columns": ["image"], "data": [["%%% not base64 %%%"]]}},
                       "not valid base64"),
    "not an image": (lambda faces: {"dataframe_split": {"columns": ["image"],
                                                       "data": [[base64.b64encode(b"hello").decode()]]}},
                     "not a recognised image"),
    "truncated jpeg": (lambda faces: {"dataframe_split": {"columns": ["image"], "data": [[
        base64.b64encode(base64.b64decode(faces[0])[:600]).decode()]]}}, "truncated"),
    "empty image": (lambda faces: {"dataframe_split": {"columns": ["image"], "data": [[""]]}}, "empty"),
    "decompression bomb": (lambda faces: {"dataframe_split": {"columns": ["image"], "data": [[_bomb()]]}}, "limit"),
    "missing image column": (lambda faces: {"dataframe_split": {"columns": ["picture"], "data": [[faces[0]]]}},
                             "image"),
    "wrong type": (lambda faces: {"dataframe_split": {"columns": ["image"], "data": [[12345]]}}, ""),
    "one bad row in a batch": (lambda faces: {"dataframe_split": {"columns": ["image"],
                                                                 "data": [[faces[0]], ["@@@"], [faces[1]]]}}, "row 1"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_4xx_naming_the_problem_and_server_keeps_answering(server, faces, case):
    make, fragment = BAD_REQUESTS[case]
    reply = requests.post(f"{server}/invocations", json=make(faces), timeout=60)
    assert 400 <= reply.status_code < 500, (case, reply.status_code, reply.text[:500])
    assert fragment in reply.text
    follow_up = _post(server, faces[:1])
    assert follow_up.status_code == 200


def test_tiny_grayscale_and_rgba_images_are_accepted(server):
    reply = _post(server, [_png("L", (7, 9)), _png("RGBA", (300, 120))])
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["predictions"]) == 2


def test_malformed_json_is_a_4xx(server, faces):
    reply = requests.post(f"{server}/invocations", data=b"{not json", headers={"Content-Type": "application/json"},
                          timeout=30)
    assert 400 <= reply.status_code < 500
    assert _post(server, faces[:1]).status_code == 200
