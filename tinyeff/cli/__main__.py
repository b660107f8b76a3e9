"""python -m tinyeff.cli"""

import sys

from tinyeff.cli import main

sys.exit(main())
