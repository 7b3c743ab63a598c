"""OpenAI's image models, qualities and backgrounds, read from the installed ``openai`` SDK.

The SDK is the truth about what OpenAI serves (never a model name from memory):
``openai/types/image_model.py`` lists every ``ImageModel`` and, in the note under it, the
"Deprecated values" (retired models, with what to use instead); ``types/image_generate_params.py``
lists the qualities and backgrounds of ``images.generate``. The two files are parsed with ``ast``
rather than imported, so the web process that validates settings does not load the SDK. An SDK
upgrade changes the choices by itself; ``tests/test_catalog.py`` pins them, so a model that
appears or goes is noticed.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path

# The GPT image models among ImageModel (the others are the retired DALL·E models).
GPT_IMAGE_PREFIXES = ("gpt-image-", "chatgpt-image-")
# The SDK's quality note: "gpt-image-2.5-sunburst and gpt-image-2.5-flare, including their
# 2026-09-08 snapshots, also support xhigh and max" (tests/test_catalog.py checks it still says so).
EXTENDED_QUALITY_MODELS = ("gpt-image-2.5-sunburst", "gpt-image-2.5-flare")
EXTENDED_QUALITIES = ("xhigh", "max")
_NOTE_ENTRY = re.compile(r'^- ((?:"[^"]+",?\s*)+):\s*(.*)$')


def _sdk_module(relative: str) -> list[ast.stmt]:
    spec = importlib.util.find_spec("openai")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the openai SDK is not installed (requirements.txt pins it)")
    return ast.parse((Path(next(iter(spec.submodule_search_locations))) / relative).read_text()).body


def _documented_literal(body: list[ast.stmt], name: str) -> tuple[tuple[str, ...], str]:
    """(the strings of the ``Literal`` assigned or annotated to ``name``, the docstring under it)."""
    for index, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            literal = node.value if node.value is not None else node.annotation
            return _strings(literal), _docstring(body[index + 1] if index + 1 < len(body) else None)
    raise RuntimeError(f"the openai SDK has no {name!r} where igny8 expects it: the SDK changed shape")


def _strings(node: ast.expr) -> tuple[str, ...]:
    return tuple(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _docstring(node: ast.stmt | None) -> str:
    is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    return node.value.value if is_doc else ""  # type: ignore[union-attr]


def deprecated_values(doc: str) -> dict[str, str]:
    """{value: the SDK's sentence about it} from a docstring's "Deprecated values:" list."""
    notes: dict[str, str] = {}
    names: list[str] = []
    for line in doc.partition("Deprecated values:")[2].splitlines():
        line = line.strip()
        entry = _NOTE_ENTRY.match(line)
        if entry:
            names = re.findall(r'"([^"]+)"', entry[1])
            notes.update({name: entry[2] for name in names})
        elif line and names:
            notes.update({name: f"{notes[name]} {line}" for name in names})
    return notes


@cache
def openai_catalogue() -> dict[str, object]:
    """``models`` (the GPT image models the SDK supports, in its order), ``retired`` ({model: the
    SDK's note}), ``qualities`` and ``backgrounds`` (the supported values, ``auto`` included)."""
    models, model_doc = _documented_literal(_sdk_module("types/image_model.py"), "ImageModel")
    retired = deprecated_values(model_doc)
    params = next(n for n in _sdk_module("types/image_generate_params.py")
                  if isinstance(n, ast.ClassDef) and n.name == "ImageGenerateParamsBase").body
    qualities, quality_doc = _documented_literal(params, "quality")
    backgrounds, _doc = _documented_literal(params, "background")
    old_qualities = deprecated_values(quality_doc)
    return {
        "models": tuple(m for m in models if m.startswith(GPT_IMAGE_PREFIXES) and m not in retired),
        "retired": retired,
        "qualities": tuple(q for q in qualities if q not in old_qualities),
        "backgrounds": backgrounds,
        "quality_doc": quality_doc,
    }


def openai_models() -> tuple[str, ...]:
    return openai_catalogue()["models"]  # type: ignore[return-value]


def retired_openai_models() -> dict[str, str]:
    return openai_catalogue()["retired"]  # type: ignore[return-value]


def qualities_for(model: str) -> tuple[str, ...]:
    """low/medium/high (and auto) for every GPT image model; xhigh and max only where supported."""
    extended = model.startswith(EXTENDED_QUALITY_MODELS)
    return tuple(q for q in openai_catalogue()["qualities"]  # type: ignore[attr-defined]
                 if extended or q not in EXTENDED_QUALITIES)


def backgrounds() -> tuple[str, ...]:
    return openai_catalogue()["backgrounds"]  # type: ignore[return-value]
