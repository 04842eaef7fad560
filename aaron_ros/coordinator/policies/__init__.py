"""Scheduling policies behind one interface (`Policy`): a new policy is one file here."""
from aaron_ros.coordinator.policies.aaron import Aaron
from aaron_ros.coordinator.policies.base import Pick, Policy, SchedulerView
from aaron_ros.coordinator.policies.elastic import Elastic
from aaron_ros.coordinator.policies.naive import Naive
from aaron_ros.coordinator.policies.priority import Priority
from aaron_ros.coordinator.policies.sequential import Sequential

POLICIES = {p.name: p for p in (Sequential, Naive, Priority, Elastic, Aaron)}
# What each policy uses when no versions setting is asked for.
DEFAULT_VERSIONS = {"sequential": "solo", "naive": "solo", "priority": "solo", "elastic": "solo",
                    "aaron": "adaptive"}


def make_policy(name: str) -> Policy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None


__all__ = ["DEFAULT_VERSIONS", "POLICIES", "Pick", "Policy", "SchedulerView", "make_policy"]
