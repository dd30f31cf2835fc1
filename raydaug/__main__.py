import sys

from raydaug.cli import main

sys.exit(main())
