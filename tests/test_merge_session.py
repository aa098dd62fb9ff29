"""Merge session files, version 2: per-range overrides (later wins, a frame's own override wins over ranges),
version 1 files still read, one-line validation errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from facelab.core.errors import InputError
from facelab.merge.batches import needs_dst_mask
from facelab.merge.options import MergeOptions
from facelab.merge.session import MergeSession, frame_key, load_session, parse_session, save_session

V2: dict[str, Any] = {"schema": "facelab.merge_session", "version": 2, "options": {}, "ranges": [], "frames": {}}


def test_ranges_resolve_in_order_and_frames_win(tmp_path: Path) -> None:
    s = parse_session(V2 | {
        "options": {"erode": 1, "mode": "seamless"},
        "ranges": [{"first": "000002", "last": "000008", "options": {"erode": 5, "blur": 9}},
                   {"first": "000006", "last": "000010", "options": {"erode": 7}}],
        "frames": {"000007": {"erode": 3}, "000009": {"mode": "overlay"}}})
    got = {f"{i:06d}": (o.erode, o.blur, o.mode) for i in range(12) for o in [s.options_for(f"{i:06d}")]}
    assert got["000001"] == (1, 5, "seamless")  # before every range: the base
    assert got["000002"] == (5, 9, "seamless") and got["000005"] == (5, 9, "seamless")  # first range, ends included
    assert got["000006"] == (7, 9, "seamless") and got["000008"] == (7, 9, "seamless")  # later range wins
    assert got["000007"] == (3, 9, "seamless")  # the frame's own override wins over both ranges
    assert got["000009"] == (7, 5, "overlay") and got["000010"] == (7, 5, "seamless")
    assert got["000011"] == (1, 5, "seamless")
    save_session(tmp_path / "s.json", s)
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["version"] == 2
    assert data["ranges"][1] == {"first": "000006", "last": "000010", "options": {"erode": 7.0}}
    assert load_session(tmp_path / "s.json") == s
    # numbered frames in number order (as list_frames sorts them), names after them
    assert frame_key("999999") < frame_key("1000000") < frame_key("a")


def test_version_1_still_reads() -> None:
    v1 = {"schema": "facelab.merge_session", "version": 1, "options": {"blur": 2}, "frames": {"000003": {"erode": 4}}}
    s = parse_session(v1)
    assert s.ranges == () and s.options_for("000003").erode == 4 and s.options_for("000004").blur == 2
    assert s.to_json()["version"] == 2
    with pytest.raises(InputError, match="unknown key 'ranges'"):  # ranges are version 2
        parse_session(v1 | {"ranges": []})


@pytest.mark.parametrize(("ranges", "message"), [
    ({"first": "000001"}, r"ranges\.0: 'first' and 'last' must be frame names"),
    ({"first": "000009", "last": "000002", "options": {}}, r"ranges\.0: first frame 000009 comes after last"),
    ({"first": "000001", "last": "000002", "options": {"erode": 1000}}, r"ranges\.0\.options\.erode"),
    ({"first": "000001", "last": "000002", "options": {"workers": 2}}, r"ranges\.0\.options\.workers: cannot change"),
    ({"first": "000001", "last": "000002", "options": {"bogus": 1}}, r"ranges\.0\.options\.bogus"),
    ({"first": "000001", "last": "000002", "extra": 1}, r"ranges\.0: unknown key 'extra'"),
    ("x", r"ranges\.0 must be an object"),
])
def test_range_validation_is_one_line(ranges: Any, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_session(V2 | {"ranges": [ranges]})
    assert "\n" not in str(err.value)


def test_bad_files_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "facelab.merge_session", "version": 2, "options": {')
    with pytest.raises(InputError, match="unreadable merge session") as err:
        load_session(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="version 3"):
        parse_session(V2 | {"version": 3})
    with pytest.raises(InputError, match="'ranges' must be a list"):
        parse_session(V2 | {"ranges": {}})


def test_apply_to_frame_range_all() -> None:
    s = MergeSession(MergeOptions(erode=1)).with_frame("000004", erode=2, blur=3).with_frame("000020", erode=9)
    r = s.with_range("000002", "000010", erode="6")  # coerced like the file's values
    assert r.ranges[0].options == {"erode": 6.0}
    assert r.options_for("000004").erode == 6 and r.options_for("000004").blur == 3  # range shows, blur kept
    assert r.options_for("000020").erode == 9 and r.options_for("000011").erode == 1
    a = r.with_all(erode=4, super_resolution=False)
    assert all(a.options_for(f"{i:06d}").erode == 4 for i in range(30))
    assert a.ranges == () and a.frames == {"000004": {"blur": 3.0}}
    assert a.without_frame("000004").frames == {}
    with pytest.raises(InputError, match=r"frames\.000004\.direction: cannot change per frame"):
        s.with_frame("000004", direction="dst2src")
    with pytest.raises(InputError, match=r"options\.erode"):
        s.with_all(erode=500)


def test_run_checks_see_range_options() -> None:
    """The run's checks (dst mask, supported modes, motion) look at the ranges' options too."""
    plain = MergeSession(MergeOptions(mask_mode="learned-prd"))
    assert not needs_dst_mask(plain)
    assert needs_dst_mask(plain.with_range("000001", "000003", mask_mode="learned-dst"))
    assert [o.motion_blur for o in plain.with_range("000001", "000003", motion_blur=20).variants()] == [0, 20]
