"""Evaluation: ranking and rating metrics, statistics, paired tests, reference rankers."""
