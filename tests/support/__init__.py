"""What the tests use but are not: the processes and servers they start (``processes``), polling
for outcomes in other processes (``waiting``), the provider doubles (``fake_http``,
``provider_servers``, ``url_servers``) and direct provider calls (``provider_calls``), accounts
and logins (``accounts``), and the helpers a test uses as a writer of one account (``writer``),
streams (``streams``) and the command line (``cli``). ``tests/conftest.py`` turns them into
fixtures; no test module imports another.

pytest rewrites the ``assert`` statements of these modules as it does a test module's, so a helper
that checks a response on the way (``article`` expects 201) shows the values when it fails.
"""

import pkgutil

import pytest

pytest.register_assert_rewrite(*(f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__)))
