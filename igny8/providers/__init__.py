"""The provider catalogue (names, models, retired models) and the factory that builds one.

Settings validation reads the catalogue; the job layer calls ``get_provider``. Provider modules
are imported inside the factory so the web process, which only needs the catalogue, does not
pay for importing the OpenAI SDK.
"""

from __future__ import annotations

from collections.abc import Collection

from .base import ImageProvider, ProviderError
from .catalog import openai_models, retired_openai_models

PROVIDERS: tuple[str, ...] = ("openai", "runware", "local")

# OpenAI's choices are the installed SDK's current GPT image models (catalog.py). Runware takes
# any model by its AIR id (``provider:id@version``); these are suggestions, with the models igny8
# itself uses: HiDream (runware:97@1), Bria 3.2 (bria:10@1), Nano Banana (google:4@2).
MODELS: dict[str, tuple[str, ...]] = {
    "openai": openai_models(),
    "runware": ("runware:100@1", "runware:97@1", "bria:10@1", "google:4@2", "runware:101@1"),
    "local": ("placeholder",),
}

DEFAULT_MODELS: dict[str, str] = {"openai": "gpt-image-2", "runware": "runware:100@1", "local": "placeholder"}

# OpenAI models the SDK marks deprecated, with its note (what happened, what to use instead).
RETIRED_MODELS: dict[str, str] = retired_openai_models()

PROVIDER_LABELS: dict[str, str] = {"openai": "OpenAI", "runware": "Runware", "local": "the placeholder renderer"}


def retired_model_message(model: str) -> str | None:
    """A sentence with the SDK's note and the default to choose when ``model`` is retired, else None."""
    note = RETIRED_MODELS.get(model)
    if note is None:
        return None
    return (f"The model {model} is retired at OpenAI ({note.rstrip('.')}). Choose {DEFAULT_MODELS['openai']} "
            "or another current model in Settings.")


def get_provider(name: str, *, api_key: str | None, model: str, base_url: str | None = None,
                 timeout: float = 120.0, latency: float = 0.0, safety_identifier: str | None = None,
                 allowed_http_hosts: Collection[str] = (), max_download_mb: float = 50.0) -> ImageProvider:
    """Build a configured provider.

    Raises ``ProviderError`` before any network call: ``bad_request`` for an unknown provider,
    ``retired_model`` for a retired model (never sent silently), ``auth`` when a key is needed
    but missing. ``timeout`` bounds each whole call (connect, stream, download). ``latency`` only
    affects the local renderer (a visible delay for demos/tests). ``safety_identifier`` (a stable
    hash of the account, never an id or e-mail) goes to OpenAI with every call.
    ``allowed_http_hosts`` and ``max_download_mb`` are the URL policy for image URLs a provider
    answers with (Runware's ``imageURL``; DESIGN.md).
    """
    if name not in PROVIDERS:
        raise ProviderError("bad_request", f"Unknown image provider {name!r}; choose one of {', '.join(PROVIDERS)}.")
    retired = retired_model_message(model)
    if retired:
        raise ProviderError("retired_model", retired)
    if name == "local":
        from .local_provider import LocalProvider

        return LocalProvider(model=model, latency=latency)
    if not api_key:
        label = PROVIDER_LABELS[name]
        raise ProviderError("auth", f"No API key saved for {label}: add one in Settings → Integrations.")
    if name == "openai":
        from .openai_provider import OpenAIProvider

        return OpenAIProvider(api_key=api_key, model=model, base_url=base_url, timeout=timeout,
                              safety_identifier=safety_identifier)
    from .runware_provider import RunwareProvider

    return RunwareProvider(api_key=api_key, model=model, base_url=base_url, timeout=timeout,
                           allowed_http_hosts=allowed_http_hosts, max_download_mb=max_download_mb)


__all__ = [
    "DEFAULT_MODELS", "MODELS", "PROVIDERS", "RETIRED_MODELS", "ImageProvider", "ProviderError",
    "get_provider", "retired_model_message",
]
