from remit.cli import main

# `main` masks a traceback nothing caught as the log is, whatever the command.
raise SystemExit(main())
