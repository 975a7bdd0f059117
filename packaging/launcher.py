"""Entry point of the bundled app (PyInstaller runs this file)."""

import sys

from cnnviz.cli import main

if __name__ == "__main__":
    sys.exit(main())
