"""`python -m weightkit`: see `weightkit.cli`."""

from weightkit.cli import main

raise SystemExit(main())
