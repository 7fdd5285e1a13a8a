"""The ``brushwork`` command line: one module per subcommand."""
