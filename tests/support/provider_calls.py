"""Calling a provider directly (no worker): the request to send, the image that comes back, and
the ``ProviderError`` a fault must become, checked never to carry the test's API keys."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from igny8.providers import DEFAULT_MODELS
from igny8.providers.base import ImageProvider, ImageRequest, ProviderError

OPENAI_KEY = "sk-test-SECRET-0123456789"
RUNWARE_KEY = "rw-test-SECRET-0123456789"


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def request_for(provider: ImageProvider, image_type: str = "featured", **overrides: object) -> ImageRequest:
    width, height = provider.size_for(image_type)
    fields = {"prompt": "A loaf of sourdough on a board", "negative_prompt": "", "width": width, "height": height,
              "model": DEFAULT_MODELS[provider.name], "output_format": "png", **overrides}
    return ImageRequest(**fields)  # type: ignore[arg-type]


def failure(provider: ImageProvider, request: ImageRequest, **kwargs: object) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.generate(request, **kwargs)  # type: ignore[arg-type]
    error = caught.value
    assert OPENAI_KEY not in str(error) and RUNWARE_KEY not in str(error), "the api key never leaks"
    assert "SECRET" not in error.message
    return error
