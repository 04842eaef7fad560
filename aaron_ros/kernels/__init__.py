"""Kernel bags: stage versions compiled per backend, checked, profiled, stored and loaded."""
