import sys

from qmac.cli import main

sys.exit(main())
