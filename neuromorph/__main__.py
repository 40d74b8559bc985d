import sys

from neuromorph.cli import main

sys.exit(main())
