"""The ``rasst`` command: one entry point over every package's commands."""
