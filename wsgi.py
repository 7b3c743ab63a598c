"""WSGI entry point: ``gunicorn -k gevent wsgi:app``."""

from igny8 import create_app

app = create_app()
