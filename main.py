"""facelab command line: ``python main.py --help``."""

from facelab.utils.runtime import set_openmp_defaults

set_openmp_defaults()  # before torch is imported

from facelab.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
