"""The ``optical`` command line: one module per subcommand, :mod:`~optical_core.cli.common`
for what they share, :mod:`~optical_core.cli.entry` for the parser and ``main``."""
