"""The HTTP service (``docmill serve`` / ``docmill worker``): a thin adapter over the engine.

Import :func:`docmill.service.app.create_app` to build the ASGI app; nothing here is
imported by the CLI until one of those commands runs.
"""
