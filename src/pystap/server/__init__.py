"""The compile server (``pystap-server``) and its client side (``pystap --use-server``).

One file per concern:

``protocol``    the versioned wire format both sides speak (framing, documents, validation)
``spec``        server specifications (``HOST:PORT#sha256:…``) and the known-servers files
``identity``    the server's two keys: its TLS identity and its module-signing key
``workdir``     one request's private directory: client files written safely, module found
``translator``  the translator child process: argv, scrubbed environment, limits
``service``     the TLS listener: connections, limits, one request end to end
``audit``       the audit log (one line per request)
``tlsclient``   the client's pinned TLS connection
``remote``      ``pystap --use-server``: request from the command line, response replayed
``trust``       ``pystap --trust-servers``
``listing``     ``pystap --list-servers``

The server process never parses a script: the translator always runs in a
child process (see ``translator``), so the server imports no pass.
"""
