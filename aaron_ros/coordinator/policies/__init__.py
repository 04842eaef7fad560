"""Scheduling policies behind one interface (`Policy`): a new policy is one file here.

The registry of policy and versions-setting names: every front end (service, bench, ROS
parameters, command line) checks a name with `check_policy` / `check_versions`."""
from aaron_ros.coordinator.policies.aaron import Aaron
from aaron_ros.coordinator.policies.base import Pick, Policy, SchedulerView
from aaron_ros.coordinator.policies.elastic import Elastic
from aaron_ros.coordinator.policies.naive import Naive
from aaron_ros.coordinator.policies.priority import Priority
from aaron_ros.coordinator.policies.sequential import Sequential
from aaron_ros.coordinator.versions import SETTINGS, check_versions

POLICIES = {p.name: p for p in (Sequential, Naive, Priority, Elastic, Aaron)}
# What each policy uses when no versions setting is asked for.
DEFAULT_VERSIONS = {"sequential": "solo", "naive": "solo", "priority": "solo", "elastic": "solo",
                    "aaron": "adaptive"}


def check_policy(name: str) -> str:
    """`name` if it is a policy's, else a ValueError listing the known ones."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
    return name


def make_policy(name: str) -> Policy:
    return POLICIES[check_policy(name)]()


__all__ = ["DEFAULT_VERSIONS", "POLICIES", "SETTINGS", "Pick", "Policy", "SchedulerView", "check_policy",
           "check_versions", "make_policy"]
