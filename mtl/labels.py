"""UTKFace file-name labels: ``{age}_{gender}_{race}_{datetime}.jpg.chip.jpg``."""

from __future__ import annotations

from dataclasses import dataclass

GENDERS = ("male", "female")  # 0 = male, 1 = female, as in UTKFace
RACES = ("White", "Black", "Asian", "Indian", "Others")
AGE_BANDS = ((0, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
AGE_BAND_NAMES = tuple(f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in AGE_BANDS)
MIN_AGE, MAX_AGE = 1, 116


class LabelError(ValueError):
    """A file name whose UTKFace labels cannot be read."""


@dataclass(frozen=True)
class FaceLabels:
    age: int
    gender: int
    race: int


def parse_labels(file_name: str) -> FaceLabels:
    """Read age, gender and race from a UTKFace file name, or raise LabelError naming the problem."""
    base = file_name.rsplit("/", 1)[-1]
    parts = base.split("_")
    if len(parts) < 4:
        raise LabelError(f"{base}: expected age_gender_race_datetime, found {len(parts)} '_' fields")
    names = ("age", "gender", "race")
    values = []
    for name, text in zip(names, parts[:3]):
        if not text.strip().isdigit():
            raise LabelError(f"{base}: {name} field {text!r} is not an integer")
        values.append(int(text))
    age, gender, race = values
    if not MIN_AGE <= age <= MAX_AGE:
        raise LabelError(f"{base}: age {age} outside {MIN_AGE}-{MAX_AGE}")
    if gender not in (0, 1):
        raise LabelError(f"{base}: gender {gender} is not 0 (male) or 1 (female)")
    if race not in range(len(RACES)):
        raise LabelError(f"{base}: race {race} is not in 0-{len(RACES) - 1}")
    return FaceLabels(age, gender, race)


def age_band(age: float) -> str:
    """Name of the age band (decades, 70+) that holds ``age``."""
    for (lo, hi), name in zip(AGE_BANDS, AGE_BAND_NAMES):
        if age <= hi:
            return name
    return AGE_BAND_NAMES[-1]
