"""Test data: the samples that ship in the repo, and the larger shared set when it is present."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session", autouse=True)
def _private_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs with XDG_CONFIG_HOME in a temporary folder, so nothing (e.g. the C2PA key facelab
    makes on first use) ever touches the real config folder; subprocesses inherit it. HOME stays (the
    browser tests find Playwright's browsers through it); tests/test_c2pa.py moves HOME too."""
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "FACELAB_C2PA_DIR", "FACELAB_C2PA_CERT",
                                            "FACELAB_C2PA_KEY")}
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    for key in ("FACELAB_C2PA_DIR", "FACELAB_C2PA_CERT", "FACELAB_C2PA_KEY"):
        os.environ.pop(key, None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def shared_data_dir() -> Path | None:
    """The shared real-data folder: $FACELAB_TEST_DATA, else ../shared/data beside the repo."""
    env = os.environ.get("FACELAB_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if (path / "clips").is_dir() else None


def shared_file(rel: str) -> Path:
    """A file of the shared data set; the test is skipped (with the reason) when it is absent."""
    base = shared_data_dir()
    if base is None:
        pytest.skip("shared test data not found: set FACELAB_TEST_DATA or provide ../shared/data")
    path = base / rel
    if not path.exists():
        pytest.skip(f"shared test data file missing: {path}")
    return path


def read_rgb(path: Path) -> np.ndarray:
    from facelab.media.frames import read_image_rgb

    return read_image_rgb(path)


@pytest.fixture(scope="session")
def sample_frames() -> list[np.ndarray]:
    """Thirty decoded frames of the bundled dst clip (a frontal man, 480x480)."""
    from facelab.media.video import iter_frames

    return [img for i, img in iter_frames(SAMPLES / "dst.mp4") if i < 30]


@pytest.fixture(scope="session")
def sample_faces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Aligned faces (whole_face, 128 px) of the bundled clips at 6 fps: (src folder, dst folder).

    About 90 src faces (woman, samples/src.mp4) and 43 dst faces (man, samples/dst.mp4).
    """
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    base = tmp_path_factory.mktemp("sample_faces")
    opts = ExtractOptions(size=128, fps=6, workers=2)
    for side in ("src", "dst"):
        run_extract(SAMPLES / f"{side}.mp4", base / side, opts)
    return base / "src", base / "dst"


@pytest.fixture(scope="session")
def shared_faces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Aligned faces (whole_face, 128 px) of the shared clips lp_d6 (src, woman) and lp_d9 (dst, man) at 6 fps."""
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    clips = {"src": shared_file("clips/lp_d6.mp4"), "dst": shared_file("clips/lp_d9.mp4")}

    def build(base: Path) -> None:
        opts = ExtractOptions(size=128, fps=6, workers=2)
        for side, clip in clips.items():
            run_extract(clip, base / side, opts)

    base = built_once(tmp_path_factory, "shared_faces", build)
    return base / "src", base / "dst"


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A session fixture's folder that the test processes share: the first pytest-xdist worker to need it builds
    it under the run's common temporary folder, the others wait for it and read it (without workers: built in
    this process's folder). Only for folders the tests read and never change."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out = root / name
    with FileLock(str(out) + ".lock"):
        if not (root / f"{name}.done").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            build(out)
            (root / f"{name}.done").touch()
    return out


# the studio's shared fixtures (studio_workspace, studio_server, browser_page): see tests/studio_support.py
from tests.studio_support import browser_page, studio_server, studio_workspace  # noqa: E402, F401
