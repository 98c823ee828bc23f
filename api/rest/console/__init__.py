"""The operator console: server-rendered pages over the REST server's service layer.

See docs/console.md. Pages live under ``/console``; the vendored front-end files (htmx, uPlot)
under ``/console/static``. :mod:`api.rest.console.app_parts` is what ``create_app`` adds;
:mod:`api.rest.console.access` is what the authentication middleware uses (imported from
there, not from this package, so that the two do not import each other at start-up).
"""

__all__: list[str] = []
