"""Layer x head maps: conventions researchers expect, in PNG and SVG."""
from __future__ import annotations

import numpy as np
import pytest

from interp.plot.heads import head_maps, head_maps_figure


def test_teacher_and_student_share_limits_centred_at_zero_layer_zero_on_top():
    t = np.array([[0.5, -0.2], [0.1, 0.0], [2.0, np.nan]])
    s = np.array([[-0.3, 0.1]])
    fig = head_maps_figure({"teacher": t, "student": s}, label="share")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    for im in images:
        assert (im.norm.vmin, im.norm.vmax, im.norm.vcenter) == (-2.0, 2.0, 0.0)  # same limits, centred at 0
        assert im.get_cmap().name.startswith("RdBu_r")  # red positive, blue negative
        assert im.origin == "upper"
    ax = images[0].axes
    bottom, top = ax.get_ylim()
    assert top < bottom  # row 0 (layer 0) drawn at the top
    assert [x.get_text() for x in ax.get_yticklabels()] == ["L0", "L1", "L2"]
    assert np.ma.is_masked(images[0].get_array()[2, 1])  # NaN shown as 'bad' (grey), not as a colour of the scale


def test_written_as_png_and_svg(tmp_path):
    paths = head_maps({"teacher": np.eye(3), "student": -np.eye(3)[:2]}, tmp_path / "maps", title="patching")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()[:500]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[layer, head\]"):
        head_maps_figure({"teacher": np.zeros(3)})
