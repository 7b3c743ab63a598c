"""The offline placeholder renderer: no network, no key, no AI.

It draws a gradient whose colours come from a hash of the prompt (the same prompt always gives the
same picture), a large "PLACEHOLDER · no AI" label so nobody mistakes it for a real image, and
the prompt itself, in DejaVu Sans (vendored in ``fonts/``: Pillow's built-in font draws ASCII
only, so a prompt in Portuguese or German showed boxes for its accents). It lets the demo and the
tests run the whole pipeline without a provider.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import textwrap
import time
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .base import GeneratedImage, ImageProvider, ImageRequest, PartialCallback

LABEL = "PLACEHOLDER · no AI"
PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "jpg": "JPEG"}
PREVIEW_WIDTH = 192
FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"


class LocalProvider(ImageProvider):
    """Renders in a few milliseconds; ``latency`` seconds of sleep make progress visible in demos."""

    name = "local"
    placeholder = True

    def __init__(self, *, model: str = "placeholder", latency: float = 0.0) -> None:
        self.model, self.latency = model, max(latency, 0.0)

    def generate(self, request: ImageRequest, on_partial: PartialCallback | None = None) -> GeneratedImage:
        """Half the latency, then one low-resolution preview to ``on_partial`` (when given), then
        the other half and the full image in ``request.output_format`` (PNG if unknown)."""
        time.sleep(self.latency / 2)
        if on_partial is not None:
            on_partial(0, _encode(_gradient(request.prompt, PREVIEW_WIDTH, _preview_height(request)), "jpeg"))
        time.sleep(self.latency / 2)
        image = _gradient(request.prompt, request.width, request.height)
        _draw_text(image, request.prompt)
        data = _encode(image, request.output_format)
        return GeneratedImage(data=data, provider=self.name, model=request.model, cost=0.0)


def _preview_height(request: ImageRequest) -> int:
    return max(1, round(PREVIEW_WIDTH * request.height / max(request.width, 1)))


def _colours(prompt: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two soft colours a pleasant distance apart on the colour wheel, chosen by the prompt."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    hue = digest[0] / 255
    shift = 0.12 + digest[1] / 255 * 0.25

    def rgb(h: float, lightness: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hls_to_rgb(h % 1.0, lightness, 0.55)
        return round(r * 255), round(g * 255), round(b * 255)

    return rgb(hue, 0.32), rgb(hue + shift, 0.62)


def _gradient(prompt: str, width: int, height: int) -> Image.Image:
    """A diagonal two-colour gradient in the prompt's colours (a new RGB image)."""
    dark, light = _colours(prompt)
    return ImageOps.colorize(_ramp(width, height), dark, light)


@lru_cache(maxsize=8)
def _ramp(width: int, height: int) -> Image.Image:
    """The grey diagonal ramp of one size; cached (batches repeat sizes) and only ever read."""
    ramp = Image.linear_gradient("L").rotate(-45, resample=Image.Resampling.BILINEAR, expand=True)
    side = ramp.width
    ramp = ramp.crop((side // 4, side // 4, side - side // 4, side - side // 4))
    return ramp.resize((width, height), Image.Resampling.BILINEAR)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT), size)


def _draw_text(image: Image.Image, prompt: str) -> None:
    """The label, large and centred, over a translucent band; the wrapped prompt below it."""
    draw = ImageDraw.Draw(image, "RGBA")
    width, height = image.size
    label_font = _font(max(16, width // 18))
    band_top, band_bottom = int(height * 0.30), int(height * 0.46)
    draw.rectangle((0, band_top, width, band_bottom), fill=(0, 0, 0, 110))
    draw.text((width / 2, (band_top + band_bottom) / 2), LABEL, font=label_font, fill=(255, 255, 255), anchor="mm")
    text_font = _font(max(12, width // 40))
    chars_per_line = max(20, int(width / (getattr(text_font, "size", 20) * 0.55)))
    lines = textwrap.wrap(prompt.strip() or "(no prompt)", width=chars_per_line, max_lines=6, placeholder=" …")
    draw.multiline_text((width / 2, height * 0.52), "\n".join(lines), font=text_font, fill=(255, 255, 255, 235),
                        anchor="ma", align="center", spacing=max(4, width // 160))


def _encode(image: Image.Image, output_format: str) -> bytes:
    """Fast settings on purpose: the storage step re-encodes into the account's format anyway."""
    fmt = PIL_FORMATS.get(output_format.lower(), "PNG")
    options = {"PNG": {"compress_level": 1}, "WEBP": {"quality": 80, "method": 0}, "JPEG": {"quality": 85}}[fmt]
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
