"""`python -m benchmarks`: run the suite (see `benchmarks.run`)."""

from .run import main

raise SystemExit(main())
