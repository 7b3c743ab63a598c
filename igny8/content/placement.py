"""Where an article's images go in its body (DESIGN.md, "Placement"), on a parsed HTML tree.

The body is parsed with html5lib (the WHATWG parsing algorithm browsers use) and written back
with its serializer, so text is always escaped and no regular expression ever reads markup.

- The featured image leads the article.
- In-article image N goes where the body has the marker ``<!-- image:N -->``; without one, at
  the end of the N-th ``<h2>`` section; images beyond the number of sections follow the last
  paragraph, in position order (the end of the body when it has no paragraph).
- Every comment is gone from the output (markers included, used or not).

A figure is never put inside an element that only takes phrasing content (a ``<p>``, a heading,
a link…): a marker written inside a paragraph places its image right after that paragraph.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

import html5lib
from html5lib.serializer import HTMLSerializer

Element = ET.Element
MARKER = "image"
# Elements whose content model takes a <figure> (flow content); the fragment root is one too.
FLOW_CONTAINERS = frozenset({"DOCUMENT_FRAGMENT", "div", "section", "article", "aside", "blockquote", "li",
                             "dd", "td", "th", "details", "main", "header", "footer", "nav", "figure", "body"})
_walker = html5lib.getTreeWalker("etree")


def parse_fragment(html: str) -> Element:
    """The fragment as a tree: a root element ``DOCUMENT_FRAGMENT`` holding the body's nodes."""
    return html5lib.parseFragment(html, treebuilder="etree", namespaceHTMLElements=False)


def serialize(root: Element) -> str:
    """The fragment's nodes as HTML: every attribute double-quoted, text and values escaped."""
    serializer = HTMLSerializer(quote_attr_values="always", quote_char='"', use_best_quote_char=False,
                                escape_lt_in_attrs=True, omit_optional_tags=False, resolve_entities=False,
                                minimize_boolean_attributes=False)
    return serializer.render(_walker(root))


def is_comment(node: Element) -> bool:
    return node.tag is ET.Comment


def marker_position(node: Element) -> int | None:
    """N of a ``<!-- image:N -->`` comment (spaces around the text allowed); None for any other node."""
    if not is_comment(node):
        return None
    name, colon, number = (node.text or "").strip().partition(":")
    if name.strip() != MARKER or not colon or not number.strip().isascii() or not number.strip().isdigit():
        return None
    return int(number.strip())


class Placer:
    """One body being given its figures: parents known for every node, anchors found on the body
    as written (before any figure goes in), figures chained after their anchor in call order."""

    def __init__(self, html: str) -> None:
        self.root = parse_fragment(html)
        self.parents = {child: parent for parent in self.root.iter() for child in parent}
        self.h2s = [node for node in self.root.iter("h2")]
        self.paragraphs = [node for node in self.root.iter("p")]
        self.markers: dict[int, Element] = {}
        for node in self.root.iter():
            position = marker_position(node)
            if position is not None:
                self.markers.setdefault(position, node)  # the first marker of a number wins
        self._after: dict[int, Element] = {}  # id(anchor) -> the last figure chained after it

    def _flow_level(self, node: Element) -> Element:
        """``node`` or its outermost ancestor below the nearest element that takes a figure."""
        while self.parents[node].tag not in FLOW_CONTAINERS:
            node = self.parents[node]
        return node

    def anchor_for(self, position: int) -> Element | None:
        """The node after which in-article image ``position`` goes; None: the end of the body."""
        if position in self.markers:
            return self._flow_level(self.markers[position])
        if 1 <= position <= len(self.h2s):
            return self._section_end(position)
        return self._flow_level(self.paragraphs[-1]) if self.paragraphs else None

    def _section_end(self, n: int) -> Element:
        """The last node of the n-th ``<h2>`` section: the siblings after its heading up to the
        next ``<h2>`` (or up to a sibling that holds it)."""
        heading = self._flow_level(self.h2s[n - 1])
        following = self.h2s[n] if n < len(self.h2s) else None
        parent, last = self.parents[heading], heading
        for sibling in list(parent)[list(parent).index(heading) + 1:]:
            if following is not None and any(node is following for node in sibling.iter()):
                break
            last = sibling
        return last

    def insert_after(self, anchor: Element | None, figure: Element) -> None:
        """Put ``figure`` after ``anchor`` (after the figures already put there), or at the end."""
        chained = self._after.get(id(anchor), anchor)
        self._after[id(anchor)] = figure
        if chained is None:
            self.root.append(figure)
            self.parents[figure] = self.root
            return
        parent = self.parents[chained]
        parent.insert(list(parent).index(chained) + 1, figure)
        figure.tail, chained.tail = chained.tail, None  # the text after the anchor stays after the figure
        self.parents[figure] = parent

    def lead(self, figure: Element) -> None:
        """Put ``figure`` first in the body."""
        figure.tail, self.root.text = self.root.text, None
        self.root.insert(0, figure)
        self.parents[figure] = self.root

    def drop_comments(self) -> None:
        """Remove every comment, keeping the text that followed it."""
        for comment in [node for node in self.root.iter() if is_comment(node)]:
            parent = self.parents[comment]
            index = list(parent).index(comment)
            if comment.tail:
                if index:
                    previous = parent[index - 1]
                    previous.tail = (previous.tail or "") + comment.tail
                else:
                    parent.text = (parent.text or "") + comment.tail
            parent.remove(comment)


def place(html: str, featured: Element | None, in_article: Iterable[tuple[int, Element]]) -> str:
    """``html`` (already sanitized) with ``featured`` leading it and each ``(position, figure)``
    of ``in_article`` placed by the rule above; anchors are found before anything moves."""
    placer = Placer(html)
    ordered: Sequence[tuple[int, Element]] = sorted(in_article, key=lambda pair: pair[0])
    anchors = [placer.anchor_for(position) for position, _ in ordered]
    for anchor, (_, figure) in zip(anchors, ordered, strict=True):
        placer.insert_after(anchor, figure)
    placer.drop_comments()
    if featured is not None:
        placer.lead(featured)
    return serialize(placer.root)
