"""Pinned, vendored front-end files (static/vendor/VERSIONS.txt records where they came from)."""

HTMX_JS = "vendor/htmx-2.0.11.min.js"
HTMX_SSE_JS = "vendor/htmx-ext-sse-2.2.4.js"
