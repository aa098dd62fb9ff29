"""`python -m facelab ...`: the same as the `facelab` command (the studio runs its jobs this way)."""

from facelab.cli.main import main

if __name__ == "__main__":
    main()
