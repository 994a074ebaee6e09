"""``python -m tuning.promote --name utkface-mtl --version N``: compare with the champion, move the alias, say why."""

from tuning.registry import main

if __name__ == "__main__":
    main()
