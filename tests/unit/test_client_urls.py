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


def test_single_instance_and_rabbitmq_use_the_endpoint_as_is() -> None:
    assert broker_url(["ssl://b-1-1.mq:61617"], Protocol.OPENWIRE) == "ssl://b-1-1.mq:61617"
    rabbit = [{"Endpoints": ["amqps://b-2.mq:5671"]}]
    assert broker_url(pick_endpoints(rabbit, Protocol.AMQP), Protocol.AMQP) == "amqps://b-2.mq:5671"


def test_stomp_picks_the_stomp_endpoint_of_each_instance() -> None:
    assert pick_endpoints(ACTIVE_STANDBY, Protocol.STOMP) == [
        "stomp+ssl://b-1-1.mq:61614",
        "stomp+ssl://b-1-2.mq:61614",
    ]


def test_widen_flattens_an_on_prem_failover_url() -> None:
    on_prem = "failover:(ssl://a.internal:61617,ssl://b.internal:61617)?timeout=3000"
    assert failover_members(on_prem) == ["ssl://a.internal:61617", "ssl://b.internal:61617"]
    assert widened_url(on_prem, ["ssl://b-1-1.mq:61617"]) == (
        "failover:(ssl://a.internal:61617,ssl://b.internal:61617,ssl://b-1-1.mq:61617)"
        "?randomize=true"
    )


def test_widen_and_narrow_as_in_the_procedure() -> None:
    assert widened_url("ssl://onprem:61617", ["ssl://amq-1:61617"]) == (
        "failover:(ssl://onprem:61617,ssl://amq-1:61617)?randomize=true"
    )
    assert narrowed_url(["ssl://amq-1:61617", "ssl://amq-2:61617"]) == (
        "failover:(ssl://amq-1:61617,ssl://amq-2:61617)"
    )
