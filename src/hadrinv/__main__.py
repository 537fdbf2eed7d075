import sys

from hadrinv.cli import main

sys.exit(main())
