"""The `cratecage` program: the entry point cargo runs, and the commands for people."""
