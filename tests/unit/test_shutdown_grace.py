"""A stopping server lets its calls run longer than the longest legitimate one (a confirm
waiting on the vault and the acquirer for the network's whole timeout)."""

import inspect

from remit.config import DEFAULT_NETWORK_TIMEOUT_S, shutdown_grace_s
from remit.grpcutil import server as grpc_server
from remit.payments.send_budget import VAULT_MARGIN_S
from remit.rest import server as rest_server


def test_the_grace_outlasts_a_confirm_at_the_default_timeout() -> None:
    assert shutdown_grace_s({}) > DEFAULT_NETWORK_TIMEOUT_S + VAULT_MARGIN_S


def test_the_grace_follows_the_network_timeout() -> None:
    assert shutdown_grace_s({"REMIT_NETWORK_TIMEOUT_S": "60"}) > 60 + VAULT_MARGIN_S


def test_both_kinds_of_server_stop_with_that_grace() -> None:
    assert "shutdown_grace_s()" in inspect.getsource(grpc_server.serve_grpc)
    assert "shutdown_grace_s()" in inspect.getsource(rest_server.uvicorn_config)
