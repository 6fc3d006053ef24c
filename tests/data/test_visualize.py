"""The drawing helpers the demo and the predict command share."""

from __future__ import annotations

import pytest
from PIL import Image

from segblocks.data.visualize import text_panel, tile_rows


def test_tile_rows_lays_rows_out_top_to_bottom_and_left_to_right() -> None:
    red, blue = Image.new("RGB", (4, 3), (255, 0, 0)), Image.new("RGB", (2, 5), (0, 0, 255))
    panel = text_panel(["hello"], width=40)
    sheet = tile_rows([[red, blue], [panel]])
    assert sheet.size == (40, 5 + panel.height)
    assert sheet.getpixel((0, 0)) == (255, 0, 0) and sheet.getpixel((4, 4)) == (0, 0, 255)
    assert sheet.getpixel((0, 4)) == (255, 255, 255)  # below the shorter picture: white
    assert sheet.getpixel((39, 5 + panel.height - 1)) == panel.getpixel((39, panel.height - 1))
    with pytest.raises(ValueError, match="at least one picture"):
        tile_rows([[], []])
