"""The paper's baselines. Each implements :class:`stepdiff.eval.scorers.PairScorer` (by
shape: nothing here imports evaluation), and :mod:`stepdiff.eval.registry` builds them by
name beside StepDiff itself."""
