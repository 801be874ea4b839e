"""``make bench``: the featurize job against the same model in one plain Python process."""
