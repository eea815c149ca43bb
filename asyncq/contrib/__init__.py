"""Integrations with other libraries, each in its own module with its own extra.

- :mod:`asyncq.contrib.starlette`: a lifespan that connects an App (and optionally
  runs a worker) and finds the App from a request (``pip install 'asyncq[fastapi]'``);
- :mod:`asyncq.contrib.fastapi`: the same, plus a FastAPI dependency.
"""
