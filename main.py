"""facelab command line: ``python main.py --help``."""

from facelab.cli import main

if __name__ == "__main__":
    main()
