"""Layer selection: pure strategies (numpy scores in, layers out) and the selection names."""
