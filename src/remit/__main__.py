from remit.cli import main

raise SystemExit(main())
