"""Lanes and the stage executor."""
