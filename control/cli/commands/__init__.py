"""One module per subcommand, each with an async ``run(args) -> int``.

``control`` is the exception: it runs the control service, whose entry
point owns its event loop, so its ``run`` is synchronous.
"""
