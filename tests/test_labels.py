import pytest

from mtl.labels import LabelError, age_band, parse_labels


def test_parses_regular_name():
    labels = parse_labels("100_1_0_20170112213001988.jpg.chip.jpg")
    assert (labels.age, labels.gender, labels.race) == (100, 1, 0)


@pytest.mark.parametrize("name, expected", [
    ("24_0_1_20170116220224657 .jpg.chip.jpg", (24, 0, 1)),  # space before the suffix
    ("55_0_0_20170116232725357jpg.chip.jpg", (55, 0, 0)),  # missing dot
])
def test_odd_but_complete_real_names_parse(name, expected, real_names):
    assert name in real_names  # these odd names really are in the folder
    labels = parse_labels(name)
    assert (labels.age, labels.gender, labels.race) == expected


@pytest.mark.parametrize("name", [
    "39_1_20170116174525125.jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
])
def test_real_names_missing_a_field_raise(name, real_names):
    assert name in real_names
    with pytest.raises(LabelError, match="found 3 '_' fields"):
        parse_labels(name)


@pytest.mark.parametrize("name, message", [
    ("abc_0_0_1.jpg", "age field 'abc'"),
    ("30_2_0_1.jpg", "gender 2"),
    ("30_0_7_1.jpg", "race 7"),
    ("0_0_0_1.jpg", "age 0 outside"),
    ("200_0_0_1.jpg", "age 200 outside"),
])
def test_invalid_fields_are_named(name, message):
    with pytest.raises(LabelError, match=message):
        parse_labels(name)


def test_age_bands():
    assert [age_band(a) for a in (1, 9, 10, 29, 69, 70, 116)] == ["0-9", "0-9", "10-19", "20-29", "60-69", "70+", "70+"]
