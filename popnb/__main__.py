import sys

from popnb.cli import main

sys.exit(main())
