"""The contention predictor: a stage version's latency under the co-runners of the moment, from its
kernel bag's profiles, corrected online by what stages really took."""
