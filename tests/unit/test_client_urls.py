"""The URLs each step gives clients."""

from mq_cutover.client_urls import (
    broker_url,
    failover_members,
    narrowed_url,
    pick_endpoints,
    widened_url,
)
from mq_cutover.plan import Protocol

ACTIVE_STANDBY = [
    {
        "Endpoints": [
            "ssl://b-1-1.mq:61617",
            "amqp+ssl://b-1-1.mq:5671",
            "stomp+ssl://b-1-1.mq:61614",
        ]
    },
    {
        "Endpoints": [
            "ssl://b-1-2.mq:61617",
            "amqp+ssl://b-1-2.mq:5671",
            "stomp+ssl://b-1-2.mq:61614",
        ]
    },
]


def test_active_standby_openwire_gets_failover_of_both_instances() -> None:
    endpoints = pick_endpoints(ACTIVE_STANDBY, Protocol.OPENWIRE)
    assert endpoints == ["ssl://b-1-1.mq:61617", "ssl://b-1-2.mq:61617"]
    assert broker_url(endpoints, Protocol.OPENWIRE) == (
        "failover:(ssl://b-1-1.mq:61617,ssl://b-1-2.mq:61617)"
    )


def test_openwire_always_gets_failover_even_for_a_single_instance() -> None:
    # A bare ssl:// OpenWire connection does not come back after a maintenance reboot.
    assert broker_url(["ssl://b-1-1.mq:61617"], Protocol.OPENWIRE) == (
        "failover:(ssl://b-1-1.mq:61617)"
    )
    options = {"maxReconnectAttempts": -1, "useExponentialBackOff": False}
    assert broker_url(["ssl://b-1-1.mq:61617"], Protocol.OPENWIRE, options) == (
        "failover:(ssl://b-1-1.mq:61617)?maxReconnectAttempts=-1&useExponentialBackOff=false"
    )


def test_rabbitmq_and_single_stomp_use_the_endpoint_as_is() -> None:
    rabbit = [{"Endpoints": ["amqps://b-2.mq:5671"]}]
    assert broker_url(pick_endpoints(rabbit, Protocol.AMQP), Protocol.AMQP) == "amqps://b-2.mq:5671"
    assert broker_url(["stomp+ssl://b-1-1.mq:61614"], Protocol.STOMP) == (
        "stomp+ssl://b-1-1.mq:61614"
    )


def test_stomp_picks_the_stomp_endpoint_of_each_instance() -> None:
    assert pick_endpoints(ACTIVE_STANDBY, Protocol.STOMP) == [
        "stomp+ssl://b-1-1.mq:61614",
        "stomp+ssl://b-1-2.mq:61614",
    ]


def test_widen_flattens_an_on_prem_failover_url() -> None:
    on_prem = "failover:(ssl://a.internal:61617,ssl://b.internal:61617)?timeout=3000"
    assert failover_members(on_prem) == ["ssl://a.internal:61617", "ssl://b.internal:61617"]
    assert widened_url(on_prem, ["ssl://b-1-1.mq:61617"], 0) == (
        "failover:(ssl://a.internal:61617,ssl://b.internal:61617,ssl://b-1-1.mq:61617)"
        "?randomize=false"
    )


def test_widened_consumers_are_placed_alternately_never_at_random() -> None:
    amazon_mq = ["ssl://amq-1:61617", "ssl://amq-2:61617"]
    urls = [widened_url("ssl://onprem:61617", amazon_mq, i, {"timeout": 3000}) for i in range(4)]
    # randomize=false connects to the first reachable member: even consumers stay on-prem,
    # odd ones go to Amazon MQ, so two consumers of a queue cover both brokers.
    assert (
        urls[0]
        == urls[2]
        == (
            "failover:(ssl://onprem:61617,ssl://amq-1:61617,ssl://amq-2:61617)"
            "?randomize=false&timeout=3000"
        )
    )
    assert (
        urls[1]
        == urls[3]
        == (
            "failover:(ssl://amq-1:61617,ssl://amq-2:61617,ssl://onprem:61617)"
            "?randomize=false&timeout=3000"
        )
    )
    assert all("randomize=true" not in url for url in urls)


def test_narrow_as_in_the_procedure() -> None:
    assert narrowed_url(["ssl://amq-1:61617", "ssl://amq-2:61617"]) == (
        "failover:(ssl://amq-1:61617,ssl://amq-2:61617)"
    )
