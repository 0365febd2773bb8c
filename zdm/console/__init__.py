"""`zdm console`: a local web page showing the whole migration live, and its JSON API.

* :mod:`zdm.console.model`: the page as data (``GET /api/state``), from the same look at the
  migration as `zdm status` (:func:`zdm.phases.live.observe`).
* :mod:`zdm.console.actions`: advance and roll back through the CLI's own function
  (:func:`zdm.phases.live.transition`), journaled with ``source: console``.
* :mod:`zdm.console.page`: the server-rendered page and its SVG diagram.
* :mod:`zdm.console.app`: the Starlette application (tokens, CSRF, routes).

This package imports no web framework itself: only :mod:`zdm.console.app` does, so the rest
of zdm (and `zdm status`) never loads Starlette.
"""
