"""The shell: the typer CLI (one module per command group), output and exit codes, the engine client
and process control, and the Textual App with the services it hands to the screens."""
