"""Command-line interface (typer): thin commands that parse, call the library and report."""
