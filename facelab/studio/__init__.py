"""facelab studio: a local web app over a workspace (workspace page, training dashboard, merge tuner).

It calls the same library functions as the CLI and keeps no state of its own: everything it changes is
in the workspace's files, so a restart loses nothing. See docs/studio.md.
"""
