"""Benchmarks below the ROS layer: the zoo run, each model alone, the policy-bench driver and its
in-process target, workloads, the throughput bound, the decision-cost bench, the predictor's
evaluation and the policy report."""
