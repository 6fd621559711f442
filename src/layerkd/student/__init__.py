"""Students: build from selected teacher layers (keep or compact), distil offline."""
