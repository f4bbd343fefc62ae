from remit.cli import main
from remit.core.logging import install_masked_excepthook

# Whatever command this is, a traceback nothing caught is masked as the log is.
install_masked_excepthook()
raise SystemExit(main())
