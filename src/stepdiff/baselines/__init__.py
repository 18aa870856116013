"""Every model evaluated on the benchmark, StepDiff included, behind one PairScorer interface."""
