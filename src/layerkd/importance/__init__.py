"""Layer importance: scores per method from the teacher cache, ablation, agreement."""
