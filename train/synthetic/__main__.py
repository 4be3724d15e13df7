"""``python -m train.synthetic``: see :mod:`train.synthetic.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
