"""A process of the platform that dies of an exception nothing caught (a bug) prints its
traceback masked as its log is: the exception's message may quote a card number, which must
not reach stderr, and with it the process manager's log, in the clear."""

import asyncio
import os
import sys
import textwrap

import pytest

pytestmark = pytest.mark.anyio

CARD = "4242424242424242"

# A process whose runner raises what a bug might: the card number in its message, in the main
# thread (through `run_process`, as `remit api` runs) and in another thread.
_DYING_PROCESS = textwrap.dedent(
    f"""
    import threading

    import remit.bootstrap
    from remit.config import from_env

    async def _run_api(config):
        thread = threading.Thread(target=_fail, name="helper")
        thread.start()
        thread.join()
        raise RuntimeError("could not charge card {CARD}")

    def _fail():
        raise ValueError("card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]} refused")

    remit.bootstrap._run_api = _run_api
    remit.bootstrap.run_process("api", from_env())
    """
)


async def test_an_uncaught_exception_prints_its_traceback_with_the_card_number_masked() -> None:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("REMIT_")
    }
    environment["REMIT_INTERNAL_TOKEN"] = "internal-token-for-a-dying-process-0123456789"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DYING_PROCESS, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()

    assert process.returncode == 1, stderr
    assert "Traceback" in stderr  # a bug's traceback is still what finds it
    assert "RuntimeError: could not charge card " in stderr
    assert "Exception in thread helper:" in stderr
    assert "ValueError: card " in stderr
    digits_only = "".join(ch for ch in stderr if ch.isdigit() or ch == "\n")
    assert CARD not in digits_only, stderr
    assert "424242" not in stderr.replace(" ", ""), stderr


# A command run through the `remit` console script (`remit.cli:main`, as `remit serve` and the
# admin commands are): a thread of the command dies, and an exception escapes afterwards.
_DYING_COMMAND = textwrap.dedent(
    f"""
    import threading

    import remit.cli

    def _versions(command):
        thread = threading.Thread(target=_fail, name="helper")
        thread.start()
        thread.join()
        return 0

    def _fail():
        raise ValueError("card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]} refused")

    remit.cli._versions = _versions
    code = remit.cli.main(["versions", "list"])
    raise RuntimeError(f"could not charge card {CARD} after exit {{code}}")
    """
)


async def test_the_console_script_masks_an_uncaught_exception_too() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DYING_COMMAND,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()

    assert process.returncode == 1, stderr
    assert "Exception in thread helper:" in stderr
    assert "ValueError: card " in stderr
    assert "RuntimeError: could not charge card " in stderr
    digits_only = "".join(ch for ch in stderr if ch.isdigit() or ch == "\n")
    assert CARD not in digits_only, stderr
    assert "424242" not in stderr.replace(" ", ""), stderr
