"""The finished article (DESIGN.md, "Output"): the sanitized body with each image that has a
stored result as a responsive ``<figure>``, placed by ``content/placement.py``.

``render_figures(body, figures)`` is pure (tested on its own); ``article_figures`` turns an
article's rows into ``Figure`` values with the URLs the caller chooses (the app's, the
``PUBLIC_MEDIA_URL`` ones, or the export's relative ``images/<file>``).
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

import nh3

from ..media.convert import FORMATS
from ..models import Content, Image
from .alt_text import alt_text_of
from .placement import place

MOBILE_MEDIA = "(max-width: 768px)"
# nh3's default allow-list, plus the sectioning elements articles are written with.
BODY_TAGS = frozenset(nh3.ALLOWED_TAGS | {"section", "main"})
# File extension -> content type, for the <source type> of the mobile file as stored.
CONTENT_TYPES = {ext: content_type for _pil, ext, content_type in FORMATS.values()}


@dataclass(frozen=True)
class Figure:
    """One image as the article shows it. ``position`` is 0 for the featured image."""

    position: int
    src: str
    alt: str
    width: int | None = None
    height: int | None = None
    mobile_src: str | None = None
    mobile_type: str | None = None
    caption: str = ""
    featured: bool = False


def sanitize(html: str) -> str:
    """The body with nh3's default allow-list and ``BODY_TAGS`` (no script, no event handler, no
    javascript: URL). Comments are kept here so that the image markers survive; placement drops
    them all after."""
    return nh3.clean(html or "", tags=set(BODY_TAGS), strip_comments=False)


def figure_element(figure: Figure) -> ET.Element:
    """``<figure><picture>[<source>]<img></picture>[<figcaption>]</figure>`` with the attributes
    in DESIGN.md's order; every value is text (the serializer escapes it)."""
    root = ET.Element("figure")
    picture = ET.SubElement(root, "picture")
    if figure.mobile_src:
        ET.SubElement(picture, "source", {"media": MOBILE_MEDIA, "srcset": figure.mobile_src,
                                          "type": figure.mobile_type or "image/webp"})
    img = ET.SubElement(picture, "img", {"src": figure.src})
    if figure.width and figure.height:
        img.set("width", str(figure.width))
        img.set("height", str(figure.height))
    img.set("alt", figure.alt)
    if figure.featured:
        img.set("loading", "eager")
        img.set("fetchpriority", "high")
    else:
        img.set("loading", "lazy")
    img.set("decoding", "async")
    if figure.caption:
        ET.SubElement(root, "figcaption").text = figure.caption
    return root


def render_figures(body: str, figures: Iterable[Figure]) -> str:
    """The sanitized ``body`` with the figures placed (the featured one first)."""
    featured, in_article = None, []
    for figure in figures:
        if figure.featured:
            featured = figure_element(figure)
        else:
            in_article.append((figure.position, figure_element(figure)))
    return place(sanitize(body), featured, in_article)


# ---------------------------------------------------------------- from the database rows

def has_result(image: Image) -> bool:
    """An image is in the output when it has a stored (active) result."""
    return bool(image.image_url and image.desktop_path)


def content_type_of(key: str | None) -> str | None:
    """The content type of a stored file, from its extension (``…-mobile.webp`` → image/webp)."""
    if not key:
        return None
    return CONTENT_TYPES.get(posixpath.splitext(key)[1].lstrip(".").lower())


UrlOf = Callable[[Image, str], str | None]


def stored_url(image: Image, variant: str) -> str | None:
    """The URL the app serves the variant at (behind the login)."""
    return image.image_url if variant == "desktop" else image.mobile_url


def public_url(base: str) -> UrlOf:
    """URLs under ``base`` (``PUBLIC_MEDIA_URL``): the base, then the file's store key."""
    prefix = base if base.endswith("/") else base + "/"

    def url_of(image: Image, variant: str) -> str | None:
        key = image.desktop_path if variant == "desktop" else image.mobile_path
        return prefix + quote(key) if key else None

    return url_of


def figure_of(image: Image, url_of: UrlOf) -> Figure:
    """The figure of an image that has a stored result, its files at ``url_of``."""
    mobile_src = url_of(image, "mobile") if image.mobile_path else None
    return Figure(
        position=image.position, src=url_of(image, "desktop") or "", alt=alt_text_of(image),
        width=image.width, height=image.height, mobile_src=mobile_src,
        mobile_type=content_type_of(image.mobile_path) if mobile_src else None,
        caption=(image.caption or "").strip(), featured=image.type == "featured",
    )


def article_figures(content: Content, url_of: UrlOf = stored_url) -> list[Figure]:
    """The article's images that have a stored result, as figures (others are left out)."""
    return [figure_of(image, url_of) for image in content.images if has_result(image)]


def article_html(content: Content, url_of: UrlOf = stored_url) -> str:
    """The finished article body: what ``GET …/content/<id>/html`` answers."""
    return render_figures(content.html, article_figures(content, url_of))
