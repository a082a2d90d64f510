"""`python -m sessions ...`"""

import sys

from tools.cli import main

sys.exit(main())
