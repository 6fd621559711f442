"""Models: the LLM backbone, the recommender towers and heads, layer surgery."""
