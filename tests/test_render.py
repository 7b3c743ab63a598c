"""The finished article's HTML, pure: where each image goes (markers, h2 sections, the last
paragraph), the exact <figure> markup, and hostile input that must stay text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import html5lib
import pytest

from igny8.content.placement import marker_position
from igny8.content.render import Figure, render_figures

HOSTILE = "<b>\"&'"


def fig(position: int, **fields) -> Figure:  # noqa: ANN003
    values = {"src": f"/media/a1/img-{position}.webp", "alt": f"Alt {position}", "width": 1536, "height": 1024}
    values.update(fields)
    return Figure(position=position, featured=position == 0, **values)


def order(html: str) -> list[str]:
    """The body's top-level blocks in order: ``img:N`` for a figure (by its src), else the tag and text."""
    root = html5lib.parseFragment(html, treebuilder="etree", namespaceHTMLElements=False)
    out = []
    for node in root:
        if node.tag == "figure":
            src = node.find("picture/img").get("src")
            out.append("img:" + src.rsplit("-", 1)[1].removesuffix(".webp"))
        else:
            out.append(f"{node.tag}:{''.join(node.itertext()).strip()}")
    return out


def parsed(html: str) -> ET.Element:
    return html5lib.parseFragment(html, treebuilder="etree", namespaceHTMLElements=False)


# ---------------------------------------------------------------- placement

def test_each_image_goes_at_its_marker_and_markers_leave_no_comment():
    body = "<p>Intro</p><!-- image:2 --><p>Middle</p><!--image:1--><p>End</p><!-- image:9 --><!-- note -->"
    html = render_figures(body, [fig(1), fig(2)])
    assert order(html) == ["p:Intro", "img:2", "p:Middle", "img:1", "p:End"]
    assert "<!--" not in html


def test_a_marker_inside_a_paragraph_places_the_image_after_that_paragraph():
    html = render_figures("<p>Before <!-- image:1 --> after</p><p>Next</p>", [fig(1)])
    assert order(html) == ["p:Before  after", "img:1", "p:Next"]


def test_the_first_of_two_markers_with_one_number_wins():
    html = render_figures("<p>A</p><!-- image:1 --><p>B</p><!-- image:1 -->", [fig(1)])
    assert order(html) == ["p:A", "img:1", "p:B"]


def test_without_markers_image_n_ends_the_nth_h2_section():
    body = "<p>Lead</p><h2>One</h2><p>1a</p><p>1b</p><h2>Two</h2><p>2a</p><h2>Three</h2><p>3a</p><ul><li>x</li></ul>"
    html = render_figures(body, [fig(3), fig(1), fig(2)])
    assert order(html) == ["p:Lead", "h2:One", "p:1a", "p:1b", "img:1", "h2:Two", "p:2a", "img:2",
                           "h2:Three", "p:3a", "ul:x", "img:3"]


def test_markers_and_sections_mix_by_position():
    body = "<h2>One</h2><p>1a</p><!-- image:2 --><p>1b</p><h2>Two</h2><p>2a</p>"
    html = render_figures(body, [fig(1), fig(2)])
    assert order(html) == ["h2:One", "p:1a", "img:2", "p:1b", "img:1", "h2:Two", "p:2a"]


def test_images_beyond_the_sections_follow_the_last_paragraph_in_position_order():
    body = "<h2>One</h2><p>1a</p><h2>Two</h2><p>2a</p><blockquote>Quote</blockquote>"
    html = render_figures(body, [fig(5), fig(3), fig(4), fig(1), fig(2)])
    assert order(html) == ["h2:One", "p:1a", "img:1", "h2:Two", "p:2a", "img:3", "img:4", "img:5",
                           "blockquote:Quote", "img:2"]


def test_without_any_h2_every_image_follows_the_last_paragraph():
    html = render_figures("<p>A</p><p>B</p><ol><li>tail</li></ol>", [fig(2), fig(1)])
    assert order(html) == ["p:A", "p:B", "img:1", "img:2", "ol:tail"]


def test_without_paragraphs_the_images_end_the_body_and_an_empty_body_is_only_images():
    assert order(render_figures("Plain text only", [fig(1)])) == ["img:1"]
    assert render_figures("Plain text only", [fig(1)]).startswith("Plain text only<figure>")
    assert order(render_figures("", [fig(0), fig(1), fig(2)])) == ["img:0", "img:1", "img:2"]


def test_the_featured_image_leads_the_article_before_any_text():
    html = render_figures("Opening words <p>P</p><h2>H</h2>", [fig(1), fig(0)])
    assert html.startswith("<figure>") and order(html) == ["img:0", "p:P", "h2:H", "img:1"]
    assert "</figure>Opening words <p>" in html


def test_an_h2_inside_a_section_element_keeps_its_image_in_that_section():
    body = "<section><h2>One</h2><p>1a</p></section><section><h2>Two</h2><p>2a</p></section>"
    root = parsed(render_figures(body, [fig(1), fig(2)]))
    sections = root.findall("section")
    assert [child.tag for child in sections[0]] == ["h2", "p", "figure"]
    assert [child.tag for child in sections[1]] == ["h2", "p", "figure"]


@pytest.mark.parametrize("text, expected", [
    (" image:3 ", 3), ("image:12", 12), ("image: 4", 4), ("image:", None), ("image:x", None),
    ("image:-1", None), ("image:²", None), ("images:1", None), ("note", None),
])
def test_marker_numbers(text, expected):
    assert marker_position(ET.Comment(text)) == expected


# ---------------------------------------------------------------- the <figure>

def test_the_figure_markup_is_exactly_the_contract():
    featured = fig(0, mobile_src="/media/a1/img-0-mobile.webp", mobile_type="image/webp", caption="A loaf")
    html = render_figures("<p>x</p>", [featured, fig(1, width=800, height=600)])
    assert html == (
        '<figure><picture><source media="(max-width: 768px)" srcset="/media/a1/img-0-mobile.webp" '
        'type="image/webp"><img src="/media/a1/img-0.webp" width="1536" height="1024" alt="Alt 0" '
        'loading="eager" fetchpriority="high" decoding="async"></picture><figcaption>A loaf</figcaption></figure>'
        '<p>x</p>'
        '<figure><picture><img src="/media/a1/img-1.webp" width="800" height="600" alt="Alt 1" loading="lazy" '
        'decoding="async"></picture></figure>')


def test_the_source_type_follows_the_mobile_file_and_sizes_are_left_out_when_unknown():
    html = render_figures("", [fig(1, mobile_src="/m/a.png", mobile_type="image/png", width=None, height=None)])
    assert '<source media="(max-width: 768px)" srcset="/m/a.png" type="image/png">' in html
    assert "width=" not in html and "height=" not in html


# ---------------------------------------------------------------- hostile input

def test_hostile_body_is_sanitized():
    body = ('<p onclick="steal()">Hi<script>alert(1)</script></p><img src=x onerror="alert(2)">'
            '<a href="javascript:alert(3)">link</a><iframe src="//evil"></iframe><style>p{}</style>'
            '<!-- image:1 --><svg><script>alert(4)</script></svg>&lt;!-- image:1 --&gt;')
    html = render_figures(body, [fig(1)])
    root = parsed(html)
    tags = {node.tag for node in root.iter() if isinstance(node.tag, str)}
    assert not tags & {"script", "iframe", "style", "svg"}
    attributes = {name for node in root.iter() for name in node.attrib}
    assert not any(name.startswith("on") for name in attributes)
    assert "javascript:" not in html and "alert(" not in html
    assert len(root.findall("figure")) == 1, "the escaped text is not a marker"
    assert "&lt;!-- image:1 --&gt;" in html


def test_alt_caption_and_urls_full_of_markup_stay_text():
    hostile = fig(1, src=f'/media/{HOSTILE}.webp', alt=HOSTILE, caption=f"{HOSTILE}<script>x</script>",
                  mobile_src=f'/m/{HOSTILE}" onerror="x', mobile_type='image/webp" onload="y')
    html = render_figures(f"<p>{HOSTILE.replace('<b>', '')}</p>", [hostile])
    root = parsed(html)
    img, source, caption = root.find("figure/picture/img"), root.find("figure/picture/source"), root.find(
        "figure/figcaption")
    assert img.get("alt") == HOSTILE and img.get("src") == f"/media/{HOSTILE}.webp"
    assert source.get("srcset") == f'/m/{HOSTILE}" onerror="x' and source.get("type") == 'image/webp" onload="y'
    assert caption.text == f"{HOSTILE}<script>x</script>" and len(caption) == 0
    assert {name for node in root.iter() for name in node.attrib} <= {
        "src", "srcset", "media", "type", "width", "height", "alt", "loading", "decoding"}
    assert 'alt="&lt;b&gt;&quot;&amp;\'"' in html or 'alt="&lt;b>&quot;&amp;\'"' in html
