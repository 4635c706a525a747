"""The offline harness's simulated brokers' APIs (`mq_cutover_cli.simulated_brokers`): the
urllib internal they rely on (canary), and that the product's own HTTP client reaches them
with the semantics the product depends on."""

from __future__ import annotations

import urllib.request

import pytest

from mq_cutover import broker_api
from mq_cutover.errors import BrokerApiFailed
from mq_cutover_cli.simulated_brokers import SimulatedBrokerApis, SimulatedRabbitApi


def test_canary_urllib_keeps_its_installed_opener_where_install_reads_it() -> None:
    # install() saves urllib.request._opener to put it back; a Python that renames it would
    # leave the simulated handler installed after a run.
    assert hasattr(urllib.request, "_opener")
    before = urllib.request._opener  # type: ignore[attr-defined]
    uninstall = SimulatedBrokerApis().install()
    assert urllib.request._opener is not before  # type: ignore[attr-defined]
    uninstall()
    assert urllib.request._opener is before  # type: ignore[attr-defined]


def test_the_product_client_reaches_a_simulated_management_api() -> None:
    api = SimulatedRabbitApi("mq-admin", "pw-123456789012")
    api.put_queue("/", "orders", {"durable": True})
    handler = SimulatedBrokerApis()
    handler.add(".amazonaws.com", api)
    uninstall = handler.install()
    try:
        good = broker_api.Endpoint("https://b-1.mq.us-east-1.amazonaws.com", "mq-admin",
                                   "pw-123456789012", "Amazon MQ")  # fmt: skip
        names = [q["name"] for q in broker_api.call(good, "GET", "/api/queues/%2F")]
        assert names == ["orders"]
        assert broker_api.exists(good, "/api/queues/%2F/orders")
        assert not broker_api.exists(good, "/api/queues/%2F/missing")
        wrong = broker_api.Endpoint(good.url, "mq-admin", "not-it", "Amazon MQ")
        with pytest.raises(BrokerApiFailed, match="HTTP 401") as refused:
            broker_api.call(wrong, "GET", "/api/overview")
        assert "not-it" not in str(refused.value)
        # A classic queue redeclared as quorum is refused, as RabbitMQ refuses it.
        with pytest.raises(BrokerApiFailed, match=r"HTTP 400.*inequivalent arg"):
            broker_api.call(good, "PUT", "/api/queues/%2F/orders",
                            {"durable": True, "arguments": {"x-queue-type": "quorum"}})  # fmt: skip
    finally:
        uninstall()
    assert [method for method, _ in api.requests].count("PUT") == 1
