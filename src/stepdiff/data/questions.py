"""The questions each benchmark task asks a model (paper Sec. 3.4): part of the data
formats, since training data, the evaluation runner and the assistant all ask them."""

from __future__ import annotations


def difference_question(category: str) -> str:
    """DiffCap's question, also the context of DiffMCQ's answer likelihood."""
    return f"What is the main difference between these videos in the category {category}?"


# DiffRank's answer words: a target's score is P(YES) against NO.
SAME_ANSWERS = ("YES", "NO")


def same_question(category: str) -> str:
    """DiffRank's yes/no question; the predicted score is P(YES)."""
    return f"Do these two videos show the same {category}? Answer YES or NO."
