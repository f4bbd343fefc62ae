"""What the REST facade takes from the core in one answer: an answer larger than this fails in
the facade (RESOURCE_EXHAUSTED, without a remit detail) before any of it is read."""

from typing import Final

FACADE_RECEIVE_BYTES: Final = 16 * 1024 * 1024
"""The facade's channels' `grpc.max_receive_message_length`."""
