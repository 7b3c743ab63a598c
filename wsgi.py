"""WSGI entry point: ``gunicorn -k gevent wsgi:app``.

The objects the app loaded (once per web process) are then moved out of the collector's sight
(``gc.freeze``, made for this): a full collection scans only what requests and streams made since,
not the app's ~100 MB again — opening 2,000 streams took 3.25-3.36 s instead of 3.77-3.79 s
(bench/stream_fanout.py, same machine, alternating runs)."""

import gc

from igny8 import create_app

app = create_app()
gc.collect()
gc.freeze()
