"""Input data: bitext sources and readers."""
