"""The ground floor: latency statistics, the machine a result was measured on, reports on disk and
terminal tables, and where the package's files live. Imports nothing else of aaron_ros."""
