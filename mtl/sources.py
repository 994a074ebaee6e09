"""Where images come from: a UTKFace folder or the Kaggle zip (its ``UTKFace/`` entries)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataSourceError(FileNotFoundError):
    """The data path is missing or holds no images."""


@dataclass(frozen=True)
class ImageSource:
    """A set of named images in a folder or zip; ``names`` are relative to the root."""

    path: Path
    names: tuple[str, ...]
    kind: str  # "folder" | "zip"
    prefix: str = ""  # folder inside the zip

    def iter_bytes(self, names: Iterable[str] | None = None) -> Iterator[tuple[str, bytes]]:
        """Yield ``(name, bytes)`` for ``names`` (default: every image, in ``names`` order)."""
        names = self.names if names is None else list(names)
        if self.kind == "folder":
            for name in names:
                yield name, (self.path / name).read_bytes()
        else:
            with zipfile.ZipFile(self.path) as archive:
                for name in names:
                    yield name, archive.read(self.prefix + name)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.rsplit("/", 1)[-1].startswith(".")


def open_source(path: str | Path) -> ImageSource:
    """Open a UTKFace folder or the Kaggle ``utkface-new`` zip, as it is downloaded."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataSourceError(f"data path not found: {root} (pass a UTKFace folder or the Kaggle zip)")
    if root.is_dir():
        names = tuple(sorted(p.name for p in root.iterdir() if p.is_file() and _is_image(p.name)))
        if not names:
            raise DataSourceError(f"no .jpg/.png images in folder {root}")
        return ImageSource(root, names, "folder")
    if not zipfile.is_zipfile(root):
        raise DataSourceError(f"{root} is neither a folder nor a zip archive")
    with zipfile.ZipFile(root) as archive:
        entries = [e for e in archive.namelist() if _is_image(e)]
    prefix = _utkface_prefix(entries)
    names = tuple(sorted(e[len(prefix):] for e in entries if e.startswith(prefix) and "/" not in e[len(prefix):]))
    if not names:
        raise DataSourceError(f"no images found in zip {root}")
    return ImageSource(root, names, "zip", prefix)


def _utkface_prefix(entries: list[str]) -> str:
    """The zip folder to read: the one named ``UTKFace`` (Kaggle layout), else the fullest folder."""
    folders: dict[str, int] = {}
    for entry in entries:
        folder = entry.rsplit("/", 1)[0] + "/" if "/" in entry else ""
        folders[folder] = folders.get(folder, 0) + 1
    named = [f for f in folders if f.rstrip("/").rsplit("/", 1)[-1] == "UTKFace"]
    if named:
        return max(named, key=lambda f: (folders[f], -len(f)))
    return max(folders, key=lambda f: folders[f]) if folders else ""
