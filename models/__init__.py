"""Driver-side models: post-processing of the MapReduce jobs' per-customer output."""
