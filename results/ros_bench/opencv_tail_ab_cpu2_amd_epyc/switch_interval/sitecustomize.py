"""The experiment's hook (ab.sh): the interpreter's switch interval from AARON_SWITCH_INTERVAL_S, in
every Python process that has this folder on its path."""
import os
import sys

if os.environ.get("AARON_SWITCH_INTERVAL_S"):
    sys.setswitchinterval(float(os.environ["AARON_SWITCH_INTERVAL_S"]))
